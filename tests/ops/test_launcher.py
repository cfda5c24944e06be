"""`make run`'s launcher: the whole platform starts, answers, and stops on Ctrl-C."""

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
START_LIMIT_S = 240  # a fresh database: migrations, collectstatic, demo images
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


def _wait_for_login_page(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"launcher exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if _get(f"{base}/login/")[0] == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"GET /login/ never answered 200:\n{log.read_text()[-4000:]}")


def test_up_serves_and_stops_every_process_on_sigint(tmp_path: Path, scratch_database_url: str):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        PIXMO_VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
        DATABASE_URL=scratch_database_url,
        REDIS_URL=SUITE_REDIS_URL,
    )
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
        _wait_for_login_page(proc, base, log)
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = " ".join(" ".join(c.cmdline()) for c in children)
        for program in (
            "gunicorn",
            "celery -A annotator_app worker",
            "celery -A annotator_app beat",
        ):
            assert program in commands, f"{program} is not running under the launcher"
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
        assert (tmp_path / "var" / "runtime.env").read_text().count(scratch_database_url) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in children:
            if child.is_running():
                child.kill()
