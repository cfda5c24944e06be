"""The clean stage: rule cleaner, validation measures, retry/fallback, real local LLM."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import text_checks
from pipelines.cleaning import (
    PROMPT,
    PROMPT_VERSION,
    STRICT_PROMPT,
    clean_transcript,
    rule_clean,
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
    "Um, so this is a, uh, a kitchen. There's a- there are two red chairs next to a "
    "wooden table, and on the the table there's, like, three white cups. In the "
    "background there's a window with, you know, blue curtains."
)
RULE_TEXT = (
    "This is a kitchen. There are two red chairs next to a wooden table, and on the "
    "table there's three white cups. In the background there's a window with blue curtains."
)


@pytest.mark.parametrize(
    ("spoken", "cleaned"),
    [
        ("Um, there is a, uh, red car.", "There is a red car."),
        ("Erm there is a hmm red car", "There is a red car."),
        ("It has, you know, a red roof.", "It has a red roof."),
        ("I mean, it is a big dog.", "It is a big dog."),
        ("There are, like, three dogs.", "There are three dogs."),
        ("There are like three dogs.", "There are three dogs."),
        ("It looks like a cat.", "It looks like a cat."),
        ("The cloud is like a horse.", "The cloud is like a horse."),
        ("Th- the dog is b- brown.", "The dog is brown."),
        ("There is a- there are two dogs.", "There are two dogs."),
        ("There's a- there are two chairs.", "There are two chairs."),
        ("The the cat sat on the the mat.", "The cat sat on the mat."),
        ("In the in the corner, a lamp.", "In the corner, a lamp."),
        ("There is, there is a cup.", "There is a cup."),
        ("I think that that dog is old.", "I think that that dog is old."),
        ("a red car ,, next to   a tree .", "A red car, next to a tree."),
        ("i see a dog. it is brown", "I see a dog. It is brown."),
        (
            "Okay so, this is a kitchen. So the floor is tiled.",
            "This is a kitchen. The floor is tiled.",
        ),
        (
            "A five- or six-year-old boy in a black-and-white shirt.",
            "A five- or six-year-old boy in a black-and-white shirt.",
        ),
        ("The sign says OPEN in 24 hour letters", "The sign says OPEN in 24 hour letters."),
        ("So many birds fly. So, it is loud.", "So many birds fly. It is loud."),
        ("um uh", ""),
        ("", ""),
    ],
)
def test_rule_clean(spoken: str, cleaned: str) -> None:
    assert rule_clean(spoken) == cleaned


def test_rule_clean_realistic_transcript() -> None:
    assert rule_clean(TRANSCRIPT) == RULE_TEXT


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


def test_validate_reports_every_problem() -> None:
    source = "A red car next to a green tree."
    terms = text_checks.content_terms(source)
    ok = validate(
        "A red car stands next to a green tree.",
        [source],
        terms=terms,
        min_recall=0.75,
        max_words=40,
    )
    assert ok == []
    assert validate("  ", [source], terms=terms, min_recall=0.75, max_words=40) == ["empty output"]
    reasons = validate(
        "Then John parked 3 red cars.", [source], terms=terms, min_recall=0.75, max_words=3
    )
    assert reasons == [
        "low content recall 0.40 < 0.75 (missing: green, next, tree)",
        "numbers not in the source: 3",
        "names not in the source: John",
        "too long: 6 words, at most 3",
    ]


def test_strip_preamble() -> None:
    assert strip_preamble('Sure! Here is the cleaned caption:\n"A red car."') == "A red car."
    assert strip_preamble("Cleaned description: A red car.") == "A red car."
    assert strip_preamble("A red car: parked.") == "A red car: parked."


# --- retries, fallback and flags against the scripted fake -------------------------------


def fake_client(fake: FakeLLM, retries: int = 1) -> LLMClient:
    return LLMClient(
        fake.url, "test", FakeLLM.model_name, 2.0, max_retries=retries, backoff_seconds=0.01
    )


def drop_half(body: dict[str, Any]) -> str:
    words = last_user_message(body).split()
    return " ".join(words[: len(words) // 2])


def test_good_answer_is_accepted_first_time(fake_llm: FakeLLM) -> None:
    fake_llm.push(
        reply("Here is the caption: " + RULE_TEXT.replace("there's three", "there are three"))
    )
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.text == RULE_TEXT.replace("there's three", "there are three")
    assert result.rule_text == RULE_TEXT
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
    strict = fake_llm.requests[1]["messages"][0]["content"]
    assert strict.startswith(STRICT_PROMPT)
    assert "empty output" in strict


def test_half_content_twice_falls_back_and_flags(fake_llm: FakeLLM) -> None:
    fake_llm.push(respond(drop_half), respond(drop_half))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.text == result.rule_text == RULE_TEXT
    assert (result.llm_attempts, result.used_fallback, result.flagged) == (2, True, True)
    assert len(result.flag_reasons) == 2
    assert all("low content recall" in r for r in result.flag_reasons)
    assert "curtain" in result.flag_reasons[0]
    assert len(fake_llm.requests) == 2


def test_invented_numbers_and_names_fall_back(fake_llm: FakeLLM) -> None:
    fake_llm.push(
        reply(RULE_TEXT.replace("three white", "7 white")),
        reply(RULE_TEXT + " It belongs to Bob."),
    )
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.used_fallback and result.flagged
    assert result.flag_reasons == [
        "attempt 1: numbers not in the source: 7",
        "attempt 2: names not in the source: Bob",
    ]


def test_too_long_output_is_rejected(fake_llm: FakeLLM) -> None:
    fake_llm.push(reply(" ".join([RULE_TEXT] * 4)), echo())
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))
    assert result.llm_attempts == 2 and not result.flagged


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
    assert all("LLM error" in r for r in result.flag_reasons)


def test_configuration_errors_propagate(fake_llm: FakeLLM) -> None:
    fake_llm.push(fail(401, "invalid api key"))
    with pytest.raises(LLMError, match="invalid api key"):
        clean_transcript(TRANSCRIPT, client=fake_client(fake_llm))


def test_min_recall_is_configurable(fake_llm: FakeLLM) -> None:
    fake_llm.push(respond(drop_half))
    result = clean_transcript(TRANSCRIPT, client=fake_client(fake_llm), min_recall=0.0)
    assert (result.llm_attempts, result.used_fallback) == (1, False)


def test_empty_transcript_is_flagged_without_calling_the_llm(fake_llm: FakeLLM) -> None:
    result = clean_transcript("um, uh", client=fake_client(fake_llm))
    assert (result.text, result.llm_attempts, result.flagged) == ("", 0, True)
    assert result.flag_reasons == ["empty transcript"]
    assert fake_llm.requests == []


# --- the real local model -----------------------------------------------------------------


@pytest.mark.slow
def test_real_local_llm_cleans_or_flags(local_llm: str) -> None:
    client = LLMClient(local_llm, "local", LOCAL_MODEL_NAME, 300.0)
    result = clean_transcript(TRANSCRIPT, client=client)
    assert result.rule_text == RULE_TEXT
    assert result.model_name == LOCAL_MODEL_NAME
    assert result.prompt_version == PROMPT_VERSION
    assert result.llm_attempts in (1, 2)
    if result.used_fallback:
        assert result.flagged and result.text == RULE_TEXT and result.flag_reasons
    else:
        assert not result.flagged and result.text
        terms = text_checks.content_terms(RULE_TEXT)
        assert (
            validate(
                result.text, [RULE_TEXT, TRANSCRIPT], terms=terms, min_recall=0.75, max_words=200
            )
            == []
        )
