"""seed_demo creates every role and the demo images once, and logins work."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_is_idempotent_and_logins_work() -> None:
    from annotator_app.accounts.models import User
    from annotator_app.catalog.models import Image
    from annotator_app.demo.services import DEMO_USERS

    first = _seed()
    images = Image.objects.count()
    assert images >= 9
    assert "9 imported" in first
    assert {u.role for u in User.objects.all()} == {"admin", "reviewer", "annotator"}

    second = _seed()
    assert "0 imported" in second
    assert Image.objects.count() == images
    assert User.objects.count() == len(DEMO_USERS)

    for username, password, _role in DEMO_USERS:
        assert f"{username}" in second and password in second
        client = Client()
        response = client.post("/login/", {"username": username, "password": password})
        assert response.status_code == 302, f"{username} cannot log in"


def test_seed_demo_refused_where_disabled() -> None:
    with override_settings(DEMO_SEED_ALLOWED=False), pytest.raises(CommandError, match="disabled"):
        _seed()
