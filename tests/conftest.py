"""Shared fixtures: the cast of every permission test.

`owner` and `other` are annotators, `reviewer` and `admin` the higher roles; every
permission test asks "can the other annotator see this?".
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.llm_fixtures", "tests.molmo_fixtures"]


@pytest.fixture
def cast(db):  # type: ignore[no-untyped-def]
    from annotator_app.accounts.models import Role
    from annotator_app.accounts.services import user_ensure

    class Cast:
        owner = user_ensure(username="owner", password="pw-owner-123", role=Role.ANNOTATOR)[0]
        other = user_ensure(username="other", password="pw-other-123", role=Role.ANNOTATOR)[0]
        reviewer = user_ensure(username="rev", password="pw-rev-123", role=Role.REVIEWER)[0]
        admin = user_ensure(username="boss", password="pw-boss-123", role=Role.ADMIN)[0]

    return Cast


@pytest.fixture
def api_as():  # type: ignore[no-untyped-def]
    """`api_as(user)` gives a DRF test client logged in as that user (None: anonymous)."""
    from rest_framework.test import APIClient

    def make(user):  # type: ignore[no-untyped-def]
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make
