"""docker-compose.yml is valid and has no default secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "pixmo.example.org", "POSTGRES_PASSWORD": "pw"}


def _compose_config(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose")
    # An empty env file keeps a developer's own .env out of the check.
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    env.update(variables)
    return subprocess.run(
        [binary, "--env-file", str(empty_env), "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid(tmp_path: Path):
    result = _compose_config(tmp_path, **REQUIRED)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_needs_every_secret_from_the_environment(tmp_path: Path, name: str):
    variables = {k: v for k, v in REQUIRED.items() if k != name}
    result = _compose_config(tmp_path, **variables)
    assert result.returncode != 0
    assert name in result.stderr
