"""HTTP side of the model service: the OpenAI chat-completions protocol over one engine.

    GET  /health                 status, model, running and waiting requests (no token);
                                 while the model loads: 503, Retry-After, stage, progress
    GET  /v1/models              the one model served here
    GET  /v1/models/{id}
    POST /v1/chat/completions    text and image_url parts, temperature, top_p, max_tokens,
                                 stop, stream (server-sent events, chunked)

Each request is parsed, its images fetched and decoded, and its prompt prepared in the
handler's own thread; only the model work goes to the engine. Errors are OpenAI-style
JSON bodies: 400 (a field is wrong, named in the message), 401 (MODEL_SERVICE_TOKEN set
and the bearer token missing or wrong), 404 (unknown model or route), 413 (body or image
too large), 503 with Retry-After (the waiting line is full, or the model is still
loading), 504 (the request timed out).

The server binds its port before the model is loaded (`ModelServer.loading`, then
`ready`), so a first start that converts weights for minutes is visible, not silent.

This module must not import annotator_app.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from model_service.serve import protocol
from model_service.serve.engine import (
    Backend,
    Engine,
    EngineClosed,
    Generation,
    Job,
    JobTimeout,
    QueueFull,
)
from model_service.serve.images import ImageLimits, load_images
from model_service.serve.loading import LoadProgress
from model_service.serve.protocol import BadRequest, ChatRequest

log = logging.getLogger("pixmo.serve")


class ServedBackend(Backend, Protocol):
    """A backend that also turns a chat request into its prompt."""

    def prepare(self, request: ChatRequest, max_tokens: int) -> tuple[Any, int]: ...


@dataclass(frozen=True)
class ServeSettings:
    name: str  # the model id clients send and /v1/models lists
    kind: str  # "molmo", "hf-vlm" or "llm", shown by /health
    default_max_tokens: int = 256
    request_timeout: float = 300.0  # seconds from arrival to the last token
    token: str | None = None  # MODEL_SERVICE_TOKEN: bearer token required when set
    limits: ImageLimits = field(default_factory=ImageLimits)

    @property
    def max_body_bytes(self) -> int:
        """Room for base64 data: URLs of the allowed images plus the text."""
        return self.limits.max_images * (self.limits.max_bytes * 4 // 3 + 4) + (1 << 20)


# Seconds a client is asked to wait (Retry-After) while the model loads.
LOADING_RETRY_AFTER = 5


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine | None,
        backend: ServedBackend | None,
        settings: ServeSettings,
        progress: LoadProgress | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self._engine = engine
        self._backend = backend
        self.settings = settings
        self.progress = progress or LoadProgress()
        self.created = int(time.time())

    @classmethod
    def loading(
        cls, address: tuple[str, int], settings: ServeSettings, progress: LoadProgress
    ) -> ModelServer:
        """A bound server that answers 503 (with `progress`) until `ready` is called."""
        return cls(address, None, None, settings, progress)

    def ready(self, engine: Engine, backend: ServedBackend, settings: ServeSettings) -> None:
        """The model is loaded: serve it (settings may now know the backend's limits)."""
        self.settings = settings
        self._backend = backend
        self._engine = engine  # set last: handlers test it to decide whether to serve

    @property
    def is_ready(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the model is still loading"
        return self._engine

    @property
    def backend(self) -> ServedBackend:
        assert self._backend is not None, "the model is still loading"
        return self._backend

    def close(self) -> None:
        """Stop the engine (when one runs) and release the socket."""
        if self._engine is not None:
            self._engine.close()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        # A client that hung up mid-answer is expected, not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Health probes (launchers, orchestrators) come every second or so: not logged.
        if self.path.split("?", 1)[0].rstrip("/") == "/health":
            return
        log.info("%s %s", self.address_string(), format % args)

    # -- plumbing --

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self,
        status: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send(status, protocol.error_body(status, message, param), headers)

    def _authorised(self) -> bool:
        token = self.server.settings.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return True
        self._discard_body()
        self._error(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        return False

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadRequest("a Content-Length header is required", status=411)
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest("Content-Length must be an integer") from None
        limit = self.server.settings.max_body_bytes
        if length < 0 or length > limit:
            self.close_connection = True
            raise BadRequest(f"the body must be at most {limit} bytes", status=413)
        return length

    def _discard_body(self) -> None:
        if self.command != "POST":
            return
        with contextlib.suppress(BadRequest):
            self.rfile.read(self._content_length())

    def _read_json(self) -> Any:
        raw = self.rfile.read(self._content_length())
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None

    # -- routes --

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        name = self.server.settings.name
        if path == "/health":
            if not self.server.is_ready:
                self._loading()
                return
            stats = {**self.server.engine.stats, **self.server.engine.load()}
            self._send(
                200, {"status": "ok", "model": name, "kind": self.server.settings.kind, **stats}
            )
            return
        if not self._authorised():
            return
        if path == "/v1/models":
            self._send(200, {"object": "list", "data": [self._model_card()]})
        elif path == f"/v1/models/{name}":
            self._send(200, self._model_card())
        elif path.startswith("/v1/models/"):
            self._error(
                404, f"model {path.removeprefix('/v1/models/')!r} is not served here", "model"
            )
        else:
            self._error(404, f"no route GET {path}")

    def _loading(self) -> None:
        settings = self.server.settings
        body = {
            "status": "loading",
            "model": settings.name,
            "kind": settings.kind,
            **self.server.progress.snapshot(),
        }
        self._send(503, body, {"Retry-After": str(LOADING_RETRY_AFTER)})

    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.server.settings.name,
            "object": "model",
            "created": self.server.created,
            "owned_by": "pixmo",
        }

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self._authorised():
            return
        if path != "/v1/chat/completions":
            self._discard_body()
            self._error(404, f"no route POST {path}")
            return
        if not self.server.is_ready:
            self._discard_body()
            stage = self.server.progress.snapshot()["stage"]
            self._error(
                503,
                f"the model is still loading ({stage}); retry later",
                headers={"Retry-After": str(LOADING_RETRY_AFTER)},
            )
            return
        try:
            request = protocol.parse_chat_request(self._read_json())
            job = self._job(request)
        except BadRequest as exc:
            self._error(exc.status, str(exc), exc.param)
            return
        except Exception as exc:  # a processor or tokenizer failing on odd input
            log.exception("preparing the prompt failed")
            self._error(500, f"preparing the prompt failed: {exc}")
            return
        try:
            self.server.engine.submit(job)
        except QueueFull as exc:
            self._error(503, str(exc), headers={"Retry-After": str(exc.retry_after)})
            return
        except EngineClosed as exc:
            self._error(503, str(exc), headers={"Retry-After": "30"})
            return
        if request.stream:
            self._stream(job, request)
        else:
            self._answer(job)

    def _job(self, request: ChatRequest) -> Job:
        settings = self.server.settings
        if request.model not in (None, "", settings.name):
            raise BadRequest(
                f"model {request.model!r} is not served here; this server has {settings.name!r}",
                param="model",
                status=404,
            )
        load_images(request.images, settings.limits)
        max_tokens = request.max_tokens or settings.default_max_tokens
        prompt, n_tokens = self.server.backend.prepare(request, max_tokens)
        return Job(
            prompt=prompt,
            prompt_tokens=n_tokens,
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop,
            deadline=time.monotonic() + settings.request_timeout,
            stream=queue.Queue() if request.stream else None,
        )

    def _answer(self, job: Job) -> None:
        try:
            result = self.server.engine.wait(job)
        except JobTimeout:
            timeout = self.server.settings.request_timeout
            self._error(504, f"the request did not finish within {timeout:g} s")
            return
        except Exception as exc:
            self._error(500, f"generation failed: {exc}")
            return
        self._send(200, self._completion(result))

    def _completion(self, result: Generation) -> dict[str, Any]:
        return protocol.completion_body(
            protocol.new_completion_id(),
            self.server.settings.name,
            result.text,
            result.finish_reason,
            result.prompt_tokens,
            result.completion_tokens,
        )

    # -- server-sent events --

    def _chunk(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = f"data: {text}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, job: Job, request: ChatRequest) -> None:
        """Send the text as it grows; a client that goes away cancels the job."""
        assert job.stream is not None
        name, cid = self.server.settings.name, protocol.new_completion_id()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunk(protocol.chunk_body(cid, name, {"role": "assistant", "content": ""}))
            while True:
                left = None if job.deadline is None else job.deadline - time.monotonic() + 1.0
                try:
                    delta = job.stream.get(timeout=max(left, 0.01) if left is not None else None)
                except queue.Empty:
                    job.cancelled = True
                    job.error = JobTimeout("the request timed out")
                    break
                if delta is None:
                    break
                self._chunk(protocol.chunk_body(cid, name, {"content": delta}))
            job.done.wait(5)
            if job.error is not None or job.result is None:
                message = "the request timed out" if isinstance(job.error, JobTimeout) else (
                    f"generation failed: {job.error}"
                )  # fmt: skip
                self._chunk(
                    protocol.error_body(504 if isinstance(job.error, JobTimeout) else 500, message)
                )
            else:
                result = job.result
                self._chunk(protocol.chunk_body(cid, name, {}, result.finish_reason))
                if request.include_usage:
                    figures = protocol.usage(result.prompt_tokens, result.completion_tokens)
                    self._chunk(protocol.chunk_body(cid, name, None, usage_figures=figures))
            self._chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (ConnectionError, OSError):
            job.cancelled = True
            self.close_connection = True
