"""The work dashboard and history pages in Chromium: the SVG chart draws, no CSP breaks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.test_login_pages import _open_page, _violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_dashboard_chart_and_history_render_under_the_csp(browser, live_server, cast) -> None:  # type: ignore[no-untyped-def]
    from annotator_app.work.services import assignment_next, assignment_submit, assignment_verdict
    from tests.work.conftest import make_campaign

    make_campaign(3, "e2e")
    assignment: Any = assignment_next(user=cast.owner)
    assignment_submit(assignment=assignment, active_seconds=90)
    assignment_verdict(
        assignment=assignment, reviewer=cast.reviewer, accept=False, reason="name the colours"
    )

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "boss", "pw-boss-123")
        page.get_by_role("link", name="Work dashboard").click()
        page.wait_for_url(f"{live_server.url}/work/dashboard/")
        chart = page.get_by_role("img")
        assert chart.count() == 1
        assert page.locator("svg.work-chart rect.bar").count() == 30
        tallest = page.locator("svg.work-chart rect.bar").last.bounding_box()
        assert tallest is not None and tallest["height"] > 50  # today's submission
        assert page.get_by_role("cell", name="campaign e2e").is_visible()
        page.goto(f"{live_server.url}/admin/work/campaign/")
        assert page.get_by_role("link", name="campaign e2e").is_visible()
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "owner", "pw-owner-123")
        page.get_by_role("link", name="Your work and review notes").click()
        assert page.get_by_text("Rejected: name the colours").is_visible()
        page.goto(f"{live_server.url}/work/dashboard/")
        assert page.get_by_role("img").count() == 0  # 403 for annotators
        assert _violations(page) == [], _violations(page)
    finally:
        context.close()
