"""Production settings refuse to start half-configured and pass Django's deploy checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], **overrides: str) -> subprocess.CompletedProcess[str]:
    # A deployed process's environment: none of the test run's own switches (the browser
    # tests set DJANGO_ALLOW_ASYNC_UNSAFE for themselves).
    dropped = {"SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["DJANGO_SETTINGS_MODULE"] = "annotator_app.settings.production"
    env.update(overrides)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"ALLOWED_HOSTS": "pixmo.example.org"}, "SECRET_KEY"),
        ({"SECRET_KEY": "s" * 50}, "ALLOWED_HOSTS"),
    ],
)
def test_production_refuses_to_start_without(overrides: dict[str, str], missing: str):
    result = _run(["-c", "import annotator_app.settings.production"], **overrides)
    assert result.returncode != 0
    assert f"environment variable {missing} is required" in result.stderr


def test_deploy_checks_are_clean_with_a_proper_environment():
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="pixmo.example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr
