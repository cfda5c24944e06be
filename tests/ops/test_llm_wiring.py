"""`make run` starts the local LLM unless OPENAI_BASE_URL points elsewhere; settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from honcho.environ import parse_procfile

from annotator_app import runtime

REPO = Path(__file__).resolve().parents[2]


def test_procfile_runs_the_local_llm_server() -> None:
    processes = parse_procfile(runtime.PROCFILE.read_text()).processes
    command = processes[runtime.LOCAL_LLM_PROCESS]
    assert "python -m model_service.serve --llm" in command
    assert "--port ${LLM_PORT:-8001}" in command


def test_child_env_points_the_pipeline_at_the_local_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("LLM_PORT", "8123")
    services = runtime.Services(database_url="postgres://x/db", redis_url="redis://x/0")
    env = runtime._child_env(services, tmp_path, 8000)
    assert runtime.uses_local_llm()
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8123/v1"
    assert env["LLM_PORT"] == "8123"


def test_an_external_llm_wins_and_the_local_one_is_not_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.internal:8000/v1")
    services = runtime.Services(database_url="postgres://x/db", redis_url="redis://x/0")
    env = runtime._child_env(services, tmp_path, 8000)
    assert not runtime.uses_local_llm()
    assert env["OPENAI_BASE_URL"] == "http://vllm.internal:8000/v1"


def _production(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    env.update(SECRET_KEY="s" * 50, ALLOWED_HOSTS="pixmo.example.org", **extra)
    code = "import annotator_app.settings.production as s; print(s.OPENAI_BASE_URL, s.LLM_MODEL)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def test_production_needs_no_key_for_a_local_server_but_one_for_https() -> None:
    local = _production()
    assert local.returncode == 0, local.stderr
    assert local.stdout.split() == ["http://127.0.0.1:8001/v1", "SmolLM2-135M-Instruct"]
    remote = _production(OPENAI_BASE_URL="https://llm.example.org/v1")
    assert remote.returncode != 0
    assert "OPENAI_API_KEY is required" in remote.stderr
    keyed = _production(OPENAI_BASE_URL="https://llm.example.org/v1", OPENAI_API_KEY="sk-test")
    assert keyed.returncode == 0, keyed.stderr


def test_a_bad_recall_threshold_fails_loudly() -> None:
    bad = _production(CLEAN_MIN_RECALL="1.5")
    assert bad.returncode != 0 and "CLEAN_MIN_RECALL" in bad.stderr


def test_caption_llm_and_thresholds_are_checked_at_start() -> None:
    bad = _production(CAPTION_LLM="sometimes")
    assert bad.returncode != 0 and "CAPTION_LLM must be auto, on or off" in bad.stderr
    for name in ("SUMMARY_MIN_RECALL", "ASR_UNCERTAIN_BELOW"):
        wrong = _production(**{name: "2"})
        assert wrong.returncode != 0 and name in wrong.stderr


def test_the_launchers_local_model_names_are_the_presets_served_names() -> None:
    from model_service.llm_models import PRESETS

    served = {key: preset.served_name for key, preset in PRESETS.items()}
    assert served == runtime.LOCAL_LLM_NAMES


def test_a_local_preset_sets_the_name_the_pipeline_sends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("LLM_MODEL", raising=False)
    services = runtime.Services(database_url="postgres://x/db", redis_url="redis://x/0")
    env = runtime._child_env(services, tmp_path, 8000)
    assert (env["LLM_LOCAL_MODEL"], env["LLM_MODEL"]) == ("smollm2", "SmolLM2-135M-Instruct")

    monkeypatch.setenv("LLM_LOCAL_MODEL", "qwen2.5-coder-0.5b")
    env = runtime._child_env(services, tmp_path, 8000)
    assert env["LLM_MODEL"] == "Qwen2.5-Coder-0.5B-Instruct"
    command = parse_procfile(runtime.PROCFILE.read_text()).processes[runtime.LOCAL_LLM_PROCESS]
    assert '--model "${LLM_LOCAL_MODEL:-smollm2}"' in command
    assert '--name "${LLM_MODEL:-SmolLM2-135M-Instruct}"' in command

    monkeypatch.setenv("LLM_LOCAL_MODEL", "gpt-9")
    with pytest.raises(runtime.LauncherError, match="LLM_LOCAL_MODEL must be one of"):
        runtime._child_env(services, tmp_path, 8000)


def test_gunicorns_control_socket_stays_with_the_stacks_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    services = runtime.Services(database_url="postgres://x/db", redis_url="redis://x/0")
    one = runtime._child_env(services, tmp_path / "one", 8000)["GUNICORN_CONTROL_SOCKET"]
    two = runtime._child_env(services, tmp_path / "two", 8001)["GUNICORN_CONTROL_SOCKET"]
    assert one == str(tmp_path / "one" / "gunicorn.ctl") and one != two
    deep = tmp_path / ("d" * 120)
    far = runtime._child_env(services, deep, 8002)["GUNICORN_CONTROL_SOCKET"]
    assert len(far) <= 100 and far.endswith("gunicorn.ctl")  # fits a unix socket's path
    web = parse_procfile(runtime.PROCFILE.read_text()).processes["web"]
    assert "--control-socket" in web and "GUNICORN_CONTROL_SOCKET" in web
