"""A small chat client for any OpenAI-compatible server (OpenAI, vLLM, the local one).

Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried a few
times with exponential backoff and jitter, then raised as `LLMUnavailable`, which the
Celery tasks retry later with their own backoff. Permanent failures (other 4xx, a
malformed response) raise `LLMError` at once. An empty answer is returned as "": the
callers validate what the model wrote.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

log = logging.getLogger("pixmo.pipelines.llm")

# Content is a string, or (for image models) a list of text and image_url parts.
Message = dict[str, Any]


class LLMError(RuntimeError):
    """A permanent failure: retrying the same request will not help."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def is_configuration(self) -> bool:
        """Authentication, permission or an unknown model: every request would fail."""
        return self.status_code in {401, 403, 404}


class LLMUnavailable(RuntimeError):
    """A transient failure (unreachable, timed out, overloaded) that outlasted the retries."""


@dataclass(frozen=True)
class ChatResult:
    """One completion: the text and what the server reported about it."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LLMClient:
    """Chat completions with quick internal retries; thread-safe (one HTTP pool)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float,
        *,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        # The openai client's own retries are off: ours count attempts and add jitter.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
        )

    @classmethod
    def from_settings(
        cls,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float,
        max_retries: int = 2,
    ) -> LLMClient:
        """Build a client from configuration values, refusing bad ones by setting name."""
        parts = urlsplit(base_url or "")
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"OPENAI_BASE_URL must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("LLM_MODEL must not be empty")
        if timeout <= 0:
            raise ValueError(f"LLM_TIMEOUT_SECONDS must be positive, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"LLM_MAX_RETRIES must not be negative, got {max_retries}")
        # A local server ignores the key, but the openai client insists on one.
        return cls(base_url, api_key or "local", model, timeout, max_retries=max_retries)

    def chat(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0) -> str:
        """The assistant's reply to `messages` ("" when the model said nothing)."""
        return self.complete(messages, max_tokens=max_tokens, temperature=temperature).text

    def complete(
        self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> ChatResult:
        """Like `chat`, with the model name, token counts and finish reason."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
                return self._result(response)
            except (openai.APIConnectionError, openai.RateLimitError) as exc:
                error: Exception = exc
            except openai.APIStatusError as exc:
                if exc.status_code < 500:
                    raise LLMError(
                        f"{self.base_url} answered HTTP {exc.status_code}: {_message(exc)}",
                        status_code=exc.status_code,
                    ) from exc
                error = exc
            except openai.APIResponseValidationError as exc:
                raise LLMError(f"{self.base_url} sent a malformed response: {exc}") from exc
            if attempt < attempts:
                delay = self._backoff(attempt)
                log.warning(
                    "LLM attempt %d/%d failed (%s); retrying in %.2f s",
                    attempt,
                    attempts,
                    _describe(error),
                    delay,
                )
                time.sleep(delay)
        raise LLMUnavailable(
            f"{self.base_url} unavailable after {attempts} attempts: {_describe(error)}"
        ) from error

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [base/2, base]."""
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(base / 2, base)

    def _result(self, response: Any) -> ChatResult:
        try:
            choice = response.choices[0]
            content = choice.message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.base_url} sent a response without a message: {exc}") from exc
        if content is not None and not isinstance(content, str):
            raise LLMError(f"{self.base_url} sent non-text content: {type(content).__name__}")
        usage = getattr(response, "usage", None)
        return ChatResult(
            text=(content or "").strip(),
            model=str(getattr(response, "model", "") or self.model),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=str(getattr(choice, "finish_reason", "") or ""),
        )


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc.message)[:300]


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return f"{type(exc).__name__}: {exc}"
