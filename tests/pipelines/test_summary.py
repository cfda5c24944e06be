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
    best_caption,
    shared_terms,
    summarize,
    validate_summary,
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
    assert (result.llm_attempts, result.used_fallback, result.flagged) == (2, False, False)
    assert fake_llm.requests[1]["messages"][0]["content"] == STRICT_PROMPT


# The failures seen from small models, each of which must send the summary to the fallback.
BAD_SUMMARIES = {
    "description written twice": (GOOD + " " + GOOD, "repeated sentence"),
    "hyphen-chained word salad": (
        "A brown-dog-red-collar green-sofa-white-wall boat-painting.", "word salad"
    ),
    "loop": (GOOD + " The dog sits, the dog sits, the dog sits, the dog sits.", "repetition loop"),
    "preamble": ("Here is a combined description of the image. " + GOOD, "commentary"),
    "copied prompt": (
        "Combine the descriptions below into one description of the image. " + GOOD,
        "copied from the instructions",
    ),
    "dropped objects": ("A dog sits on a sofa.", "lost shared content words"),
    "invented number": (GOOD.replace("A brown dog", "Two brown dogs"), "numbers no input states"),
}  # fmt: skip


@pytest.mark.parametrize(("answer", "needle"), BAD_SUMMARIES.values(), ids=BAD_SUMMARIES.keys())
def test_rejected_summaries_fall_back_to_the_best_caption(
    fake_llm: FakeLLM, answer: str, needle: str
) -> None:
    fake_llm.push(reply(answer), reply(answer))
    result = summarize(CAPTIONS, client=fake_client(fake_llm))
    # The rule: most shared terms covered (each input has 6 of the 8), then the most
    # content terms (the second and third have 9), then the first of those.
    assert best_caption(CAPTIONS) == 1 and result.source_index == 1
    assert result.text == CAPTIONS[1]
    assert (result.used_fallback, result.flagged, result.llm_attempts) == (True, True, 2)
    assert result.flag_reasons[0] == "LLM summary rejected, caption 2 of 3 is kept"
    assert any(r.startswith("attempt 1: ") and needle in r for r in result.flag_reasons)
    assert any(r.startswith("attempt 2: ") and needle in r for r in result.flag_reasons)


def test_without_an_llm_the_best_caption_is_the_summary(fake_llm: FakeLLM) -> None:
    result = summarize(CAPTIONS, client=None)
    assert (result.text, result.source_index, result.model_name) == (CAPTIONS[1], 1, "rules")
    assert (result.used_fallback, result.flagged, result.llm_attempts) == (False, False, 0)
    assert fake_llm.requests == []


def test_best_caption_skips_inputs_that_fail_the_output_checks() -> None:
    looping = "A brown dog, a brown dog, a brown dog, a brown dog on a green sofa, white wall."
    assert best_caption([looping, CAPTIONS[0]]) == 1


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
def test_real_local_llm_summary_is_validated_or_falls_back(local_llm: str) -> None:
    client = LLMClient(local_llm, "local", LOCAL_MODEL_NAME, 300.0)
    result = summarize(CAPTIONS[:2], client=client)
    assert result.model_name == LOCAL_MODEL_NAME and result.llm_attempts in (1, 2)
    if result.used_fallback:
        assert result.flagged and result.text in CAPTIONS[:2]
        assert any(r.startswith("attempt 2:") for r in result.flag_reasons)
    else:
        assert validate_summary(result.text, CAPTIONS[:2], min_recall=0.8) == []
