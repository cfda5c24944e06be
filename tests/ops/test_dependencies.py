"""pyproject.toml's pinned direct dependencies agree with the requirements.txt freeze."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(spec: str) -> str:
    return re.sub(r"\[.*\]", "", spec.split("==")[0]).lower().replace("_", "-")


def test_every_direct_dependency_is_pinned_to_the_frozen_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["dev"]
    frozen = {
        _name(line): line.split("==")[1].split("+")[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    mismatched = []
    for spec in direct:
        assert "==" in spec, f"{spec} is not pinned"
        name, version = _name(spec), spec.split("==")[1]
        if frozen.get(name) != version:
            mismatched.append(f"{name}: pyproject {version}, requirements.txt {frozen.get(name)}")
    assert mismatched == []
