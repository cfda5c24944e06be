"""What `make run` waits for: the ready line only once every part answers, meanwhile
which parts are still starting, with the LLM's loading stage from its /health."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from annotator_app import readiness
from annotator_app.readiness import Monitor, Part
from model_service.serve import loading
from model_service.serve.loading import LoadProgress
from model_service.serve.server import ModelServer, ServeSettings
from tests.llm_fixtures import _free_port


def _scripted(answers: list[tuple[bool, str]]) -> Callable[[], tuple[bool, str]]:
    """A part that answers as scripted, then keeps the last answer."""

    def check() -> tuple[bool, str]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return check


def test_ready_is_said_only_when_every_part_answers() -> None:
    lines: list[str] = []
    parts = [
        Part("web", _scripted([(True, "")])),
        Part("worker", _scripted([(False, "no ping answer yet"), (True, "")])),
        Part("llm", _scripted([(False, "converting GGUF (one-time): weights, 4/272 tensors")] * 3
                              + [(True, "")])),
    ]  # fmt: skip
    monitor = Monitor(parts, "http://127.0.0.1:9", threading.Event(), say=lines.append,
                      interval=0.01, report_every=3600)  # fmt: skip
    monitor.run()
    assert monitor.ready.is_set()
    ready = [i for i, line in enumerate(lines) if "PixMo platform ready" in line]
    assert len(ready) == 1 and ready[0] == len(lines) - 1
    assert "web, worker, llm answer" in lines[-1]
    waiting = "\n".join(lines[:-1])
    assert "worker (no ping answer yet)" in waiting
    assert "llm (converting GGUF (one-time): weights, 4/272 tensors)" in waiting
    assert "web answers at http://127.0.0.1:9" in waiting


def test_a_part_that_never_answers_keeps_the_platform_not_ready() -> None:
    lines: list[str] = []
    stop = threading.Event()
    parts = [Part("web", _scripted([(True, "")])), Part("llm", _scripted([(False, "x")]))]
    monitor = Monitor(parts, "http://h", stop, say=lines.append, interval=0.01)
    monitor.start()
    stop.wait(0.3)
    stop.set()
    monitor.join(5)
    assert not monitor.ready.is_set()
    assert not any("ready" in line for line in lines)
    assert lines.count("  still starting: llm (x)") == 1  # said once, not every poll


def test_the_llm_check_reads_the_loading_stage_of_a_real_server() -> None:
    progress = LoadProgress()
    progress.stage(loading.CONVERTING, total=272, unit="tensors")
    progress.advance(40)
    server = ModelServer.loading(("127.0.0.1", 0), ServeSettings("m", "llm"), progress)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        answers, detail = readiness.llm_check(url)()
    finally:
        server.shutdown()
        server.close()
    assert not answers
    assert detail.startswith("converting GGUF (one-time): weights, 40/272 tensors, ")
    assert detail.endswith(" s")


def test_parts_that_are_not_up_do_not_answer(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    assert readiness.web_check(closed)() == (False, "not answering yet")
    assert readiness.llm_check(f"{closed}/v1")() == (False, "not answering yet")
    assert readiness.beat_check(tmp_path, 0)() == (False, "schedule not written yet")
    (tmp_path / "celerybeat-schedule").write_bytes(b"")
    assert readiness.beat_check(tmp_path, 0)()[0]


def test_the_broker_url_matches_the_settings_for_a_unix_socket() -> None:
    assert (
        readiness.celery_broker_url("unix:///v/redis.sock?db=3")
        == "redis+socket:///v/redis.sock?virtual_host=3"
    )
    assert readiness.celery_broker_url("redis://h:6379/2") == "redis://h:6379/2"
