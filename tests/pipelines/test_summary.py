"""The summary stage: one caption from all cleaned transcripts, validated, one retry."""

from __future__ import annotations

import pytest

from pipelines.llm import LLMClient, LLMError, LLMUnavailable
from pipelines.summary import (
    PROMPT,
    PROMPT_VERSION,
    SEPARATOR,
    STRICT_PROMPT,
    SummaryInvalid,
    shared_terms,
    summarize,
)
from tests.llm_fixtures import LOCAL_MODEL_NAME, FakeLLM, echo, fail, reply

CAPTIONS = [
    "A brown dog sits on a green sofa. It wears a red collar.",
    "A dog with a red collar lies on a green couch in front of a white wall.",
    "On a green sofa there is a brown dog; a painting of a boat hangs on the white wall.",
]
GOOD = (
    "A brown dog with a red collar sits on a green sofa in front of a white wall "
    "with a painting of a boat."
)


def fake_client(fake: FakeLLM) -> LLMClient:
    return LLMClient(fake.url, "test", FakeLLM.model_name, 2.0, max_retries=1, backoff_seconds=0.01)


def test_shared_terms_are_those_said_twice() -> None:
    assert shared_terms(CAPTIONS) == {
        "brown",
        "dog",
        "red",
        "collar",
        "green",
        "sofa",
        "white",
        "wall",
    }
    assert shared_terms(CAPTIONS[:1]) == {
        "brown",
        "dog",
        "sit",
        "green",
        "sofa",
        "wear",
        "red",
        "collar",
    }


def test_valid_summary_first_time(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(GOOD))
    result = summarize(CAPTIONS, client=fake_client(fake_llm))
    assert (result.text, result.prompt_version, result.model_name) == (
        GOOD,
        PROMPT_VERSION,
        FakeLLM.model_name,
    )
    assert result.llm_attempts == 1
    [request] = fake_llm.requests
    assert request["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": SEPARATOR.join(CAPTIONS)},
    ]


def test_invented_name_then_stricter_retry(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(GOOD + " The dog belongs to Alice."), reply(GOOD))
    result = summarize(CAPTIONS, client=fake_client(fake_llm))
    assert result.llm_attempts == 2
    strict = fake_llm.requests[1]["messages"][0]["content"]
    assert strict.startswith(STRICT_PROMPT) and "Alice" in strict


def test_two_bad_answers_raise_summary_invalid(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(""), reply("A dog with 4 legs."))
    with pytest.raises(SummaryInvalid) as info:
        summarize(CAPTIONS, client=fake_client(fake_llm))
    message = str(info.value)
    assert "attempt 1: empty output" in message
    assert "attempt 2: low content recall" in message
    assert "numbers not in the source: 4" in message


def test_echo_of_all_inputs_is_accepted(fake_llm: FakeLLM) -> None:
    fake_llm.push(echo())
    assert "painting of a boat" in summarize(CAPTIONS, client=fake_client(fake_llm)).text


def test_no_captions_is_invalid(fake_llm: FakeLLM) -> None:
    with pytest.raises(SummaryInvalid, match="no captions"):
        summarize(["", "  "], client=fake_client(fake_llm))
    assert fake_llm.requests == []


def test_unavailable_and_configuration_errors_propagate(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(500), fail(500))
    with pytest.raises(LLMUnavailable):
        summarize(CAPTIONS, client=fake_client(fake_llm))
    fake_llm.push(fail(404, "model not found"))
    with pytest.raises(LLMError, match="model not found"):
        summarize(CAPTIONS, client=fake_client(fake_llm))


@pytest.mark.slow
def test_real_local_llm_summary_is_validated(local_llm: str) -> None:
    client = LLMClient(local_llm, "local", LOCAL_MODEL_NAME, 300.0)
    try:
        result = summarize(CAPTIONS[:2], client=client)
    except SummaryInvalid as exc:
        # The 135M model may fail twice; then the reasons name what was wrong.
        assert "attempt 1:" in str(exc) and "attempt 2:" in str(exc)
    else:
        assert result.text and result.model_name == LOCAL_MODEL_NAME
        assert result.llm_attempts in (1, 2)
