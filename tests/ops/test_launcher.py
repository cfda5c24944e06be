"""`make run`'s launcher: the whole platform starts, says ready only once web, worker,
beat and the local LLM answer, keeps gunicorn's control socket under its var/, and stops
every process on Ctrl-C with a last line saying so."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.ops.conftest import SUITE_REDIS_URL

REPO = Path(__file__).resolve().parents[2]
# A fresh database (migrations, collectstatic, demo images) and the LLM loading its cached
# conversion, or converting once when the cache is empty (minutes on a busy machine).
START_LIMIT_S = 600
READY_LINE = "PixMo platform ready at"
STOP_LIMIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""


def _wait_for_ready_line(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"launcher exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if READY_LINE in log.read_text():
            return
        time.sleep(0.2)
    pytest.fail(f"the launcher never said it is ready:\n{log.read_text()[-4000:]}")


@pytest.mark.slow
def test_up_serves_and_stops_every_process_on_sigint(tmp_path: Path, scratch_database_url: str):
    port, llm_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    drop = ("DJANGO_SETTINGS_MODULE", "OPENAI_BASE_URL", "LLM_MODEL", "GUNICORN_CONTROL_SOCKET")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PIXMO_VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
        LLM_PORT=str(llm_port),
        DATABASE_URL=scratch_database_url,
        REDIS_URL=SUITE_REDIS_URL,
    )
    # The conversion of the LLM's weights is cached per machine, as the LLM tests do;
    # its progress while converting is tested in tests/model_service/test_serve_loading.py.
    env.setdefault("LLM_CACHE_DIR", str(REPO / "var" / "llm-cache"))
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "annotator_app.runtime", "up"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children: list[psutil.Process] = []
    try:
        _wait_for_ready_line(proc, log)
        # Ready means every part answers, the LLM included, not only the web server.
        assert _get(f"{base}/login/")[0] == 200
        assert _get(f"http://127.0.0.1:{llm_port}/health")[0] == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = " ".join(" ".join(c.cmdline()) for c in children)
        for program in (
            "gunicorn",
            "celery -A annotator_app worker",
            "celery -A annotator_app beat",
            "model_service.serve --llm",
        ):
            assert program in commands, f"{program} is not running under the launcher"
        control = tmp_path / "var" / "gunicorn.ctl"
        assert control.is_socket(), "gunicorn's control socket is not under the stack's var/"
        if (REPO / "frontend" / "package.json").exists():
            status, body, content_type = _get(f"{base}/static/assets/app.js")
            assert status == 200, "frontend/dist is not served: run `npm run build` in frontend/"
            assert "javascript" in content_type and body

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOP_LIMIT_S) == 0, log.read_text()[-4000:]
        _, alive = psutil.wait_procs(children, timeout=STOP_LIMIT_S)
        assert not alive, f"still running after the launcher exited: {alive}"
        text = log.read_text()
        assert base in text
        assert text.rstrip().splitlines()[-1].startswith("Everything stopped: web, worker, beat")
        assert (tmp_path / "var" / "runtime.env").read_text().count(scratch_database_url) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in children:
            if child.is_running():
                child.kill()
