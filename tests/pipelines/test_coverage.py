"""The coverage rules on written examples: what ticks each guiding question, what does not."""

from __future__ import annotations

import pytest

from pipelines.coverage import QUESTION_KEYS, QUESTIONS, coverage_of


def covered(text: str) -> set[str]:
    return set(coverage_of(text).covered_keys)


# (question key, texts that answer it, texts that do not)
CASES = [
    (
        "first_glance",
        [
            "This is a photo of a busy kitchen.",
            "The image shows a street at night.",
            "It's a screenshot of a chat window.",
            "At first glance a dog sleeping.",
        ],
        ["dog sleeping on a rug", "Cars go by."],
    ),
    (
        "objects_counts",
        [
            "There are three dogs.",
            "I count 12 bottles on the shelf",
            "a couple of chairs",
            "Both cats look up.",
            "twenty-one balloons",
        ],
        ["A dog and a cat.", "Some chairs stand about."],
    ),
    (
        "text",
        [
            "A sign that says fresh bread.",
            "The label reads organic milk.",
            "There is writing on the wall.",
            'The shirt has "Boston" on it',
            "the word stop is painted on the road",
        ],
        ["A dog on a sofa.", "A man holds an umbrella."],
    ),
    (
        "positions",
        [
            "On the left a tree.",
            "A cup sits next to the plate.",
            "Behind the fence a horse.",
            "The lamp is above the table.",
            "a dog in front of the house",
        ],
        ["A dog and a cat.", "The cup is full of tea."],
    ),
    (
        "details",
        [
            "If you look closely the paint is peeling.",
            "There is a small scratch on the lens.",
            "Its shadow falls on the grass.",
            "The mug has a tiny chip.",
        ],
        ["A dog and a cat.", "A car drives."],
    ),
    (
        "background",
        [
            "In the background there are mountains.",
            "Far away a boat sails.",
            "The sky is cloudy.",
            "In the back a crowd waits.",
        ],
        ["A dog and a cat.", "A back door stands open."],
    ),
    (
        "style_color",
        [
            "The car is red.",
            "A black and white photograph.",
            "It is a cartoon drawing.",
            "Everything looks pastel.",
            "The walls are GREY.",
        ],
        ["A dog and a cat.", "The man sits."],
    ),
]


@pytest.mark.parametrize(("key", "answers", "misses"), CASES, ids=[c[0] for c in CASES])
def test_each_question_ticks_on_its_kind_of_words_only(
    key: str, answers: list[str], misses: list[str]
) -> None:
    for text in answers:
        assert key in covered(text), f"{key} should tick for {text!r}"
    for text in misses:
        assert key not in covered(text), f"{key} should not tick for {text!r}"


def test_the_cases_cover_every_question() -> None:
    assert {c[0] for c in CASES} == set(QUESTION_KEYS)
    assert len(QUESTIONS) == 7


def test_a_full_description_covers_all_seven_and_names_its_evidence() -> None:
    text = (
        "This is a photo of a bakery. There are two people walking past. "
        "A green sign above the door says fresh bread. On the left a red bicycle leans "
        "against the wall, and if you look closely the paint is peeling. "
        "In the background the sky is grey."
    )
    result = coverage_of(text)
    assert result.open_questions == []
    by_key = {q.key: q for q in result.questions}
    assert "two" in by_key["objects_counts"].evidence
    assert "says" in by_key["text"].evidence
    assert "background" in by_key["background"].evidence
    assert by_key["first_glance"].evidence[0] == "this is a"
    assert result.words == len(text.split())


def test_nothing_said_leaves_every_question_open_in_the_page_order() -> None:
    result = coverage_of("")
    assert result.covered_keys == []
    assert result.open_questions == [q.text for q in QUESTIONS]
    assert result.to_dict()["covered"] == 0 and result.to_dict()["total"] == 7


def test_open_questions_name_what_is_missing() -> None:
    result = coverage_of("There are three red apples on the left.")
    assert result.open_questions == [
        "What is the image at first glance?",
        "What does the text say?",
        "What subtle details are noticeable?",
        "What is in the background?",
    ]


def test_words_inside_other_words_do_not_tick() -> None:
    # "tent" holds "ten", "bread" holds "red", "settled" holds "left"-ish letters.
    assert covered("tent bread settled throne") == set()


def test_the_dictionary_form_is_json_ready_and_bounded() -> None:
    data = coverage_of("red " * 50 + "one two three four five").to_dict()
    style = next(q for q in data["questions"] if q["key"] == "style_color")
    assert style["covered"] is True and style["evidence"] == ["red"]
    counts = next(q for q in data["questions"] if q["key"] == "objects_counts")
    assert counts["evidence"] == ["one", "two", "three"]  # at most three, in order
