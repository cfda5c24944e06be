"""The chat client against the scripted fake: retries, backoff, permanent errors."""

from __future__ import annotations

import pytest

from pipelines.llm import LLMClient, LLMError, LLMUnavailable
from tests.llm_fixtures import FakeLLM, fail, garbage, hang, reply

MESSAGES = [{"role": "user", "content": "a red car next to a tree"}]


def client_for(fake: FakeLLM, *, timeout: float = 2.0, retries: int = 2) -> LLMClient:
    return LLMClient(
        fake.url, "test", FakeLLM.model_name, timeout, max_retries=retries, backoff_seconds=0.01
    )


def test_500_then_success_is_retried(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(500), fail(503), reply("A red car next to a tree."))
    result = client_for(fake_llm).complete(MESSAGES, max_tokens=32)
    assert result.text == "A red car next to a tree."
    assert result.model == FakeLLM.model_name
    assert len(fake_llm.requests) == 3
    assert fake_llm.requests[0]["max_tokens"] == 32
    assert fake_llm.requests[0]["temperature"] == 0.0


def test_persistent_5xx_raises_unavailable_after_the_retries(fake_llm: FakeLLM) -> None:
    fake_llm.default = fail(502)
    with pytest.raises(LLMUnavailable, match=r"after 3 attempts.*HTTP 502"):
        client_for(fake_llm).chat(MESSAGES, max_tokens=8)
    assert len(fake_llm.requests) == 3


def test_429_is_transient(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(429, "slow down"))
    assert client_for(fake_llm).chat(MESSAGES, max_tokens=8) == MESSAGES[0]["content"]
    assert len(fake_llm.requests) == 2


def test_timeout_raises_unavailable(fake_llm: FakeLLM) -> None:
    fake_llm.default = hang(10)
    with pytest.raises(LLMUnavailable, match="timed out"):
        client_for(fake_llm, timeout=0.3, retries=1).chat(MESSAGES, max_tokens=8)
    assert len(fake_llm.requests) == 2


def test_hang_once_then_answer(fake_llm: FakeLLM) -> None:
    fake_llm.push(hang(10))
    assert client_for(fake_llm, timeout=0.3).chat(MESSAGES, max_tokens=8) == MESSAGES[0]["content"]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_permanent_and_not_retried(fake_llm: FakeLLM, status: int) -> None:
    fake_llm.push(fail(status, "bad request body"))
    with pytest.raises(LLMError, match=f"HTTP {status}: bad request body") as info:
        client_for(fake_llm).chat(MESSAGES, max_tokens=8)
    assert info.value.status_code == status
    assert info.value.is_configuration == (status in {401, 404})
    assert len(fake_llm.requests) == 1


def test_malformed_response_is_permanent(fake_llm: FakeLLM) -> None:
    fake_llm.push(garbage())
    with pytest.raises(LLMError, match=r"malformed|without a message"):
        client_for(fake_llm).chat(MESSAGES, max_tokens=8)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("content", ["", None, "   "])
def test_empty_output_is_returned_as_empty_string(fake_llm: FakeLLM, content: str | None) -> None:
    fake_llm.push(reply(content))
    assert client_for(fake_llm).chat(MESSAGES, max_tokens=8) == ""


def test_unreachable_endpoint_is_unavailable() -> None:
    client = LLMClient("http://127.0.0.1:9/v1", "k", "m", 1.0, max_retries=1, backoff_seconds=0.01)
    with pytest.raises(LLMUnavailable, match="after 2 attempts"):
        client.chat(MESSAGES, max_tokens=8)


def test_backoff_grows_exponentially_with_jitter() -> None:
    client = LLMClient(
        "http://127.0.0.1:9/v1", "k", "m", 1.0, backoff_seconds=1.0, max_backoff_seconds=3.0
    )
    for attempt, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)], 1):
        delays = {client._backoff(attempt) for _ in range(50)}
        assert all(low <= d <= high for d in delays)
        assert len(delays) > 1  # jittered


def test_from_settings_refuses_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        LLMClient.from_settings(base_url="localhost:8001", api_key="", model="m", timeout=5)
    with pytest.raises(ValueError, match="LLM_MODEL"):
        LLMClient.from_settings(base_url="http://h/v1", api_key="", model="", timeout=5)
    with pytest.raises(ValueError, match="LLM_TIMEOUT_SECONDS"):
        LLMClient.from_settings(base_url="http://h/v1", api_key="", model="m", timeout=0)
    client = LLMClient.from_settings(
        base_url="http://h/v1", api_key="", model="m", timeout=5, max_retries=4
    )
    assert client.max_retries == 4
