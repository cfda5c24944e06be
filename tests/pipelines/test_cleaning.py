"""The clean stage: validation against each failure kind seen, retry, fallback, flags."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import text_checks
from pipelines.cleaning import (
    PROMPT,
    PROMPT_VERSION,
    RULES_MODEL,
    STRICT_PROMPT,
    clean_transcript,
    strip_preamble,
    validate,
)
from pipelines.llm import LLMClient, LLMError, LLMUnavailable
from tests.llm_fixtures import (
    LOCAL_MODEL_NAME,
    FakeLLM,
    echo,
    fail,
    garbage,
    last_user_message,
    reply,
    respond,
)

TRANSCRIPT = (
    "Um, so this is a, uh, a living room. There's a- there are three, no wait, two grey "
    "sofas facing a wooden table, and on the the table there's, like, the remote control "
    "and a red mug. In the background there's a window with, you know, blue curtains."
)
RULE_TEXT = (
    "This is a living room. There are two grey sofas facing a wooden table, and on the "
    "table there's the remote control and a red mug. In the background there's a window "
    "with blue curtains."
)
GOOD = RULE_TEXT.replace("there's the remote", "there are the remote")
INSTRUCTIONS = [PROMPT, STRICT_PROMPT]


def test_the_rules_clean_the_transcript() -> None:
    assert clean_transcript(TRANSCRIPT, client=None).text == RULE_TEXT


def check(output: str) -> list[str]:
    return validate(
        output,
        rule_text=RULE_TEXT,
        transcript=TRANSCRIPT,
        min_recall=0.9,
        instructions=INSTRUCTIONS,
    )


# Each failure kind seen from small models, with the reason that must name it.
FAILURES = {
    "loop": (
        RULE_TEXT + " The window has blue curtains and the window has blue curtains and the "
        "window has blue curtains and the window has blue curtains.",
        "repetition loop",
    ),
    "repeated sentence": (RULE_TEXT + " " + RULE_TEXT, "repeated sentence"),
    "preamble": ("Here's a rewritten version of the text with the fillers removed. " + RULE_TEXT,
                 "commentary"),
    "changelog": (RULE_TEXT + "\n\nChanges made:\n- removed um\n- removed the repeated the",
                  "commentary"),
    "copied retry prompt": (
        "Copy the user's text and fix only punctuation and capital letters. " + RULE_TEXT,
        "copied from the instructions",
    ),
    "dropped object": (RULE_TEXT.replace("the remote control and ", ""), "lost content words"),
    "changed number": (RULE_TEXT.replace("two grey", "four grey"), "numbers changed"),
    "undone correction": (RULE_TEXT.replace("two grey", "three grey"), "undoes a self-correction"),
    "hyphen salad": (
        "Living-room-sofas-grey two-sofas-table-wooden remote-control-mug-red window-blue-curtains.",
        "word salad",
    ),
    "broken grammar": (
        "living room two grey sofas wooden table remote control red mug background window "
        "blue curtains",
        "broken grammar",
    ),
    "invented name": (RULE_TEXT + " It belongs to Maria.", "names not in the source: Maria"),
    "too long": (" ".join([RULE_TEXT.replace(".", ",")] * 3), "too long"),
    "paraphrase": (
        "The picture is a lovely depiction of a living room, where two grey sofas face a "
        "wooden table holding the remote control and a red mug, in front of a window "
        "with blue curtains.",
        "reworded",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("output", "needle"), FAILURES.values(), ids=FAILURES.keys())
def test_validation_rejects_each_failure_kind(output: str, needle: str) -> None:
    reasons = check(output)
    assert any(needle in r for r in reasons), reasons


def test_faithful_edits_pass() -> None:
    assert check(RULE_TEXT) == []
    assert check(GOOD) == []
    assert check("Here is the caption: " + GOOD) != []  # validate sees the raw answer
    assert check(strip_preamble("Here is the caption: " + GOOD)) == []
    assert check("") == ["empty output"]
    assert any("max_tokens" in r for r in validate(
        GOOD, rule_text=RULE_TEXT, transcript=TRANSCRIPT, min_recall=0.9, finish_reason="length"
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("twenty five dogs and 3 cats", {"25", "3"}),
        ("two hundred and ten birds", {"210"}),
        ("one thousand two hundred", {"1200"}),
        ("two three", {"2", "3"}),
        ("1,000 people paid 2.50", {"1000", "2.5"}),
        ("no numbers here", set()),
    ],
)
def test_numbers_are_normalised(text: str, expected: set[str]) -> None:
    assert text_checks.numbers(text) == expected


def test_content_terms_stem_and_drop_stopwords() -> None:
    terms = text_checks.content_terms(
        "There are three dogs sitting on the red sofas in the picture"
    )
    assert terms == {"3", "dog", "sit", "red", "sofa"}


def test_recall_is_measured_on_content_terms() -> None:
    terms = text_checks.content_terms("A red car next to a green tree")
    score, missing = text_checks.recall(terms, "A red car.")
    assert score == pytest.approx(2 / 5)
    assert missing == ["green", "next", "tree"]
    assert text_checks.recall(terms, "Red cars are next to green trees.")[0] == 1.0


def test_novel_numbers_and_names() -> None:
    source = ["A pair of shoes and twenty five pens near a sign from paris."]
    assert text_checks.novel_numbers("Two shoes and 25 pens.", source) == []
    assert text_checks.novel_numbers("Seven shoes and 25 pens, 1 sign.", source) == ["7"]
    assert text_checks.novel_names("The sign is from Paris. Shoes lie there.", source) == []
    assert text_checks.novel_names("The pens belong to Maria near the Louvre.", source) == [
        "Louvre",
        "Maria",
    ]


def test_strip_preamble() -> None:
    assert strip_preamble('Sure! Here is the cleaned caption:\n"A red car."') == "A red car."
    assert strip_preamble("Cleaned description: A red car.") == "A red car."
    assert strip_preamble("A red car: parked.") == "A red car: parked."


# --- without an LLM: the rules, and the ASR's unsure words --------------------------------


def test_rules_only_is_not_flagged_and_calls_nothing() -> None:
    result = clean_transcript(TRANSCRIPT, client=None)
    assert (result.text, result.rule_text) == (RULE_TEXT, RULE_TEXT)
    assert (result.model_name, result.llm_attempts, result.used_fallback) == (RULES_MODEL, 0, False)
    assert (result.flagged, result.flag_reasons) == (False, [])


def test_uncertain_asr_words_flag_the_caption() -> None:
    result = clean_transcript(TRANSCRIPT, client=None, uncertain=["sofas", "mug"])
    assert result.text == RULE_TEXT and result.flagged
    assert result.flag_reasons == ["uncertain ASR words, listen before accepting: sofas, mug"]


# --- retries, fallback and flags against the scripted fake -------------------------------


def fake_client(fake: FakeLLM, retries: int = 1) -> LLMClient:
    return LLMClient(
        fake.url, "test", FakeLLM.model_name, 2.0, max_retries=retries, backoff_seconds=0.01
    )


def drop_half(body: dict[str, Any]) -> str:
    words = last_user_message(body).split()
    return " ".join(words[: len(words) // 2])


def test_good_answer_is_accepted_first_time(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply("Here is the caption: " + GOOD))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert (result.text, result.rule_text) == (GOOD, RULE_TEXT)
    assert (result.llm_attempts, result.used_fallback, result.flagged) == (1, False, False)
    assert result.flag_reasons == []
    assert (result.prompt_version, result.model_name) == (PROMPT_VERSION, FakeLLM.model_name)
    [request] = fake_llm.requests
    assert request["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": RULE_TEXT},
    ]
    assert request["temperature"] == 0.0
    assert request["model"] == FakeLLM.model_name


def test_empty_output_then_good_answer_on_the_stricter_retry(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(""), echo())
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert (result.llm_attempts, result.used_fallback, result.flagged) == (2, False, False)
    assert result.text == RULE_TEXT
    # The retry does not quote the rejection back: small models copy it into the answer.
    assert fake_llm.requests[1]["messages"][0]["content"] == STRICT_PROMPT


@pytest.mark.parametrize("kind", FAILURES.keys())
def test_each_failure_kind_twice_falls_back_flagged_with_reasons(
    fake_llm: FakeLLM, kind: str
) -> None:
    output, needle = FAILURES[kind]
    fake_llm.push(reply(output), reply(output))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm), uncertain=["mug"])
    assert result.text == result.rule_text == RULE_TEXT
    assert (result.llm_attempts, result.used_fallback, result.flagged) == (2, True, True)
    reasons = result.flag_reasons
    assert reasons[0] == "LLM edit rejected, the rule text is kept"
    assert any(r.startswith("attempt 1: ") and needle in r for r in reasons), reasons
    assert any(r.startswith("attempt 2: ") and needle in r for r in reasons), reasons
    assert reasons[-1].startswith("uncertain ASR words")


def test_half_content_twice_falls_back_and_names_the_lost_words(fake_llm: FakeLLM) -> None:
    fake_llm.push(respond(drop_half), respond(drop_half))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.used_fallback and result.text == RULE_TEXT
    assert any("curtain" in r and "lost content words" in r for r in result.flag_reasons)
    assert len(fake_llm.requests) == 2


def test_transient_errors_are_retried_inside_one_attempt(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(500), echo())
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert (result.llm_attempts, result.flagged) == (1, False)
    assert len(fake_llm.requests) == 2


def test_unreachable_llm_raises_unavailable(fake_llm: FakeLLM) -> None:
    fake_llm.default = fail(503)
    with pytest.raises(LLMUnavailable):
        clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))


def test_malformed_answers_count_as_failed_attempts(fake_llm: FakeLLM) -> None:
    fake_llm.push(garbage(), garbage())
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.used_fallback and result.flagged
    assert all("LLM error" in r for r in result.flag_reasons[1:])


def test_configuration_errors_propagate(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(401, "invalid api key"))
    with pytest.raises(LLMError, match="invalid api key"):
        clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))


def test_min_recall_is_configurable(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(FAILURES["dropped object"][0]))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm), min_recall=0.5)
    assert (result.llm_attempts, result.used_fallback) == (1, False)


def test_empty_transcript_is_flagged_without_calling_the_llm(fake_llm: FakeLLM) -> None:
    result = clean_transcript("um, uh", client=fake_client(fake_llm))
    assert (result.text, result.llm_attempts, result.flagged) == ("", 0, True)
    assert result.flag_reasons == ["empty transcript"]
    assert fake_llm.requests == []


# --- the real local model -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # two answers of the CPU model; minutes on a busy machine
def test_real_local_llm_edit_is_validated_or_falls_back(local_llm: str) -> None:
    client = LLMClient(local_llm, "local", LOCAL_MODEL_NAME, 300.0)
    result = clean_transcript(TRANSCRIPT, client=client)
    assert result.rule_text == RULE_TEXT
    assert result.model_name == LOCAL_MODEL_NAME
    assert result.prompt_version == PROMPT_VERSION
    assert result.llm_attempts in (1, 2)
    if result.used_fallback:
        assert result.flagged and result.text == RULE_TEXT and len(result.flag_reasons) >= 2
    else:
        assert not result.flagged and check(result.text) == []
