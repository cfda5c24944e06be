"""Login, roles, tokens and throttling, through the real views."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_login_page_renders_with_csp_and_no_inline_script(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    scripts = re.findall(rb"<script[^>]*>(.*?)</script>", response.content, flags=re.S)
    assert scripts, "the page loads the frontend bundle"
    assert all(body.strip() == b"" for body in scripts), "no inline script bodies"
    assert b"/static/assets/app.js" in response.content
    assert b" on" + b"click=" not in response.content.lower()


def test_each_role_can_log_in_and_sees_its_role(cast) -> None:  # type: ignore[no-untyped-def]
    for user, password, label in [
        (cast.owner, "pw-owner-123", "Annotator"),
        (cast.reviewer, "pw-rev-123", "Reviewer"),
        (cast.admin, "pw-boss-123", "Admin"),
    ]:
        c = Client()
        response = c.post("/login/", {"username": user.username, "password": password})
        assert response.status_code == 302, response.content
        home = c.get("/")
        assert label.encode() in home.content


def test_anonymous_is_sent_to_login_and_api_refuses(client: Client) -> None:
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/me/").status_code in (401, 403)


def test_login_requires_csrf(cast) -> None:  # type: ignore[no-untyped-def]
    c = Client(enforce_csrf_checks=True)
    response = c.post("/login/", {"username": "owner", "password": "pw-owner-123"})
    assert response.status_code == 403


def test_repeated_failed_logins_lock_the_account(cast) -> None:  # type: ignore[no-untyped-def]
    c = Client()
    for _ in range(5):
        c.post("/login/", {"username": "owner", "password": "wrong"})
    locked = c.post("/login/", {"username": "owner", "password": "pw-owner-123"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content


def test_token_api_gives_a_token_that_authenticates(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    anon = api_as(None)
    bad = anon.post("/api/v1/auth/token/", {"username": "owner", "password": "nope"})
    assert bad.status_code in (401, 403)
    good = anon.post("/api/v1/auth/token/", {"username": "owner", "password": "pw-owner-123"})
    assert good.status_code == 200
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {good.json()['token']}")
    me = client.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["role"] == "annotator"


def test_schema_and_docs_are_served(cast, client: Client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/me/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200


def _stuff(client: Client, count: int, *, address: str = "203.0.113.7") -> None:
    """One wrong password for each of `count` different usernames, from one address."""
    for n in range(count):
        client.post("/login/", {"username": f"victim{n}", "password": "guess"}, REMOTE_ADDR=address)


def test_credential_stuffing_locks_out_the_address_across_usernames(cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 8
    attacker = Client()
    _stuff(attacker, 7)  # never twice the same username: no pair reaches its limit
    still_open = attacker.post(
        "/login/", {"username": "owner", "password": "pw-owner-123"}, REMOTE_ADDR="203.0.113.7"
    )
    assert still_open.status_code == 302  # under the limit, and logging in does not reset it
    Client().post("/logout/")
    _stuff(Client(), 1)
    # The 8th failure from the address: even the right password of a real user is refused.
    locked = Client().post(
        "/login/", {"username": "other", "password": "pw-other-123"}, REMOTE_ADDR="203.0.113.7"
    )
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content
    assert "sessionid" not in locked.cookies  # no session was written for the attacker
    token = Client().post(
        "/api/v1/auth/token/",
        {"username": "other", "password": "pw-other-123"},
        REMOTE_ADDR="203.0.113.7",
    )
    assert token.status_code in (401, 403, 429) and b'"token"' not in token.content
    # Another address is not affected.
    elsewhere = Client().post(
        "/login/", {"username": "other", "password": "pw-other-123"}, REMOTE_ADDR="198.51.100.9"
    )
    assert elsewhere.status_code == 302


def test_the_address_limit_can_be_turned_off(cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 0
    _stuff(Client(), 12)
    response = Client().post(
        "/login/", {"username": "other", "password": "pw-other-123"}, REMOTE_ADDR="203.0.113.7"
    )
    assert response.status_code == 302
