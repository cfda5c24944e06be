"""The OpenAI chat-completions protocol: request validation and response bodies.

`parse_chat_request` turns a JSON body into a `ChatRequest` or raises `BadRequest` with
a message naming the field (HTTP 4xx). Content may be a string or a list of parts:
`{"type": "text", "text": ...}` and `{"type": "image_url", "image_url": {"url": ...}}`
(http(s) or `data:` URLs; images.py loads them). Unknown top-level fields are ignored,
as OpenAI-compatible servers commonly do; known ones are checked.

This module must not import annotator_app.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

ROLES = {"system", "developer", "user", "assistant"}
MAX_STOP_STRINGS = 4


class BadRequest(ValueError):
    """The request is malformed; the message says which field is wrong."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclass
class ImageRef:
    """An image part: its URL, where it sits in the request, and once loaded, the image."""

    url: str
    where: str  # e.g. "messages[0].content[1]"
    image: Image.Image | None = None


@dataclass
class Turn:
    role: str  # "system", "user" or "assistant" ("developer" is read as "system")
    text: str
    images: list[ImageRef] = field(default_factory=list)


@dataclass
class ChatRequest:
    model: str | None
    turns: list[Turn]
    max_tokens: int | None  # None: the server's default
    temperature: float
    top_p: float
    stop: list[str]
    stream: bool
    include_usage: bool

    @property
    def images(self) -> list[ImageRef]:
        return [ref for turn in self.turns for ref in turn.images]


def _parts(index: int, content: Any) -> tuple[str, list[ImageRef]]:
    where = f"messages[{index}].content"
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of parts", param="messages")
    texts: list[str] = []
    images: list[ImageRef] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url:
                raise BadRequest(f"{where}[{j}].image_url.url must be a string", param="messages")
            images.append(ImageRef(url, f"{where}[{j}]"))
        else:
            raise BadRequest(
                f"{where}[{j}] must be a text or an image_url part, got {kind!r}",
                param="messages",
            )
    return "\n".join(texts), images


def _turn(index: int, message: Any) -> Turn:
    if not isinstance(message, dict):
        raise BadRequest(f"messages[{index}] must be an object", param="messages")
    role = message.get("role")
    if role not in ROLES:
        raise BadRequest(
            f"messages[{index}].role must be one of {sorted(ROLES)}, got {role!r}",
            param="messages",
        )
    content = message.get("content")
    if content is None and role == "assistant":
        content = ""
    text, images = _parts(index, content)
    if images and role != "user":
        raise BadRequest(f"messages[{index}]: only user messages may hold images", param="messages")
    return Turn("system" if role == "developer" else str(role), text, images)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number in [{low}, {high}]", param=name)
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of strings", param="stop")
    if len(stop) > MAX_STOP_STRINGS:
        raise BadRequest(f"stop takes at most {MAX_STOP_STRINGS} strings", param="stop")
    return [s for s in stop if s]


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body (images are not loaded here)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if body.get("n", 1) not in (1, None):
        raise BadRequest("n must be 1", param="n")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    turns = [_turn(i, m) for i, m in enumerate(messages)]
    if turns[-1].role != "user":
        raise BadRequest("the last message must come from the user", param="messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", param="stream_options")
    return ChatRequest(
        model=model,
        turns=turns,
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        stop=_stop(body),
        stream=stream,
        include_usage=bool(options.get("include_usage")),
    )


# --- responses ------------------------------------------------------------------------------


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chunk_body(
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_figures: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One server-sent chunk; `delta` None gives the usage-only chunk (empty choices)."""
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    ]  # fmt: skip
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage_figures is not None:
        body["usage"] = usage_figures
    return body


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}
