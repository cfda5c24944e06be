"""Each role logs in through the real login form in Chromium; no page breaks the CSP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import log_in, watched_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _open_page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    page, problems = watched_page(context)
    return context, page, problems


def _violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__cspViolations"))


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [
        ("owner", "pw-owner-123", "Annotator"),
        ("rev", "pw-rev-123", "Reviewer"),
        ("boss", "pw-boss-123", "Admin"),
    ],
)
def test_role_logs_in_in_a_real_browser(  # type: ignore[no-untyped-def]
    browser, live_server, cast, username, password, role
) -> None:
    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, username, password)
        assert page.get_by_text(f"signed in as {role}").is_visible()
        # The frontend bundle ran (it marks the document), despite the strict CSP.
        assert page.evaluate("document.documentElement.dataset.js") == "on"
        admin_link = page.get_by_role("link", name="Admin")
        assert admin_link.count() == (1 if role == "Admin" else 0)
        assert _violations(page) == [] and problems == []

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{live_server.url}/login/")
    finally:
        context.close()


def test_admin_and_api_docs_render_under_the_csp(browser, live_server, cast) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "boss", "pw-boss-123")
        page.goto(f"{live_server.url}/admin/catalog/image/")
        assert page.get_by_role("heading", name="Select image to change").is_visible()
        page.goto(f"{live_server.url}/api/docs/")
        page.get_by_text("/api/v1/me/").first.wait_for(timeout=15000)
        assert _violations(page) == [], _violations(page)
        assert problems == [], problems
    finally:
        context.close()


def test_wrong_password_shows_an_error(browser, live_server, cast) -> None:  # type: ignore[no-untyped-def]
    context, page, _ = _open_page(browser)
    try:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill("owner")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    finally:
        context.close()
