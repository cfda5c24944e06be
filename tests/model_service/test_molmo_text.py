"""Molmo text formats: points, counts, clocks, caption/chat prompts, CapQA turns."""

from __future__ import annotations

import pytest

from pipelines import molmo_text as mt


def test_single_point_format_and_round_trip() -> None:
    text = mt.points_to_text([(61.54, 40.58)], "dog")
    assert text == '<point x="61.5" y="40.6" alt="dog">dog</point>'
    assert mt.parse_points(text) == [(61.5, 40.6)]


def test_several_points_are_indexed_from_one_and_sorted() -> None:
    # Unsorted input: x first, then y breaks the tie between the two x=10.5 points.
    text = mt.points_to_text([(33.14, 40.2), (10.5, 20.0), (10.5, 5.0)], "dogs")
    assert text == (
        '<points x1="10.5" y1="5.0" x2="10.5" y2="20.0" x3="33.1" y3="40.2" alt="dogs">'
        "dogs</points>"
    )
    objects = mt.parse_pointed_objects(text)
    assert objects == [mt.PointedObject("dogs", [(10.5, 5.0), (10.5, 20.0), (33.1, 40.2)])]


def test_sort_uses_written_values() -> None:
    # 10.04 and 10.01 both write as 10.0, so y decides the order.
    assert mt.sort_points([(10.04, 50.0), (10.01, 20.0)]) == [(10.01, 20.0), (10.04, 50.0)]


def test_no_points_and_clamping() -> None:
    assert mt.points_to_text([], "cat") == "There are none."
    assert mt.count_answer([], "cat") == "There are none."
    assert mt.points_to_text([(100.04, -0.2)], "x") == '<point x="100.0" y="0.0" alt="x">x</point>'


def test_label_cannot_break_attribute_syntax() -> None:
    text = mt.points_to_text([(1, 2), (3, 4)], 'the "big"\n<b>dog</b>')
    assert 'alt="the big b dog /b"' in text
    objects = mt.parse_pointed_objects(text)
    assert objects[0].label == "the big b dog /b"
    assert objects[0].points == [(1.0, 2.0), (3.0, 4.0)]


def test_count_answer_round_trip() -> None:
    text = mt.count_answer([(50.0, 50.0), (20.0, 10.0)], "apples")
    assert text == (
        'Counting the <points x1="20.0" y1="10.0" x2="50.0" y2="50.0" alt="apples">apples'
        "</points> shows a total of 2."
    )
    assert mt.parse_count(text) == 2
    assert mt.parse_points(text) == [(20.0, 10.0), (50.0, 50.0)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<points x1=10 y1="20" x2="300" y2="4" x3="5.5" y3="6', [(10.0, 20.0), (5.5, 6.0)]),
        ("<point x='12.5' y='7'>a</point>", [(12.5, 7.0)]),
        ('<point x="abc" y="7">a</point>', []),
        ('<point x="12.5">a</point>', []),
        ('<points x1="1" y1="2" x2="3">a', [(1.0, 2.0)]),
        ("no tags at all", []),
        ("<<<>>> point x= <", []),
        ('<POINT X="1" Y="2">a</POINT>', [(1.0, 2.0)]),
    ],
)
def test_parse_malformed(text: str, expected: list[tuple[float, float]]) -> None:
    assert mt.parse_points(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There are none.", 0),
        ("Counting the <points x1='1' y1='2'>a</points> shows a total of 7.", 7),
        ("a total of twelve.", 12),
        ("I can see three cats.", 3),
        ('<point x="40.0" y="50.0" alt="a">a</point>', None),
        ("no idea", None),
    ],
)
def test_parse_count(text: str, expected: int | None) -> None:
    assert mt.parse_count(text) == expected


def test_pixel_percent_conversion() -> None:
    assert mt.pixels_to_percent(50, 25, 200, 100) == (25.0, 25.0)
    assert mt.percent_to_pixels(25.0, 25.0, 200, 100) == (50.0, 25.0)
    with pytest.raises(ValueError, match="positive"):
        mt.pixels_to_percent(1, 1, 0, 10)


def test_clock_answer_and_parse() -> None:
    assert mt.clock_answer(0, 5) == "The time shown is 12:05."
    assert mt.clock_answer(13, 59) == "The time shown is 1:59."
    assert mt.parse_clock_answer("The time shown is 12:05.") == (12, 5)
    assert mt.parse_clock_answer("It is 14:30") == (2, 30)
    assert mt.parse_clock_answer("It is 25:30 or 3:61") is None
    assert mt.parse_clock_answer(mt.CLOCK_HIDDEN_ANSWER) is None
    with pytest.raises(ValueError, match="minute"):
        mt.clock_answer(3, 60)


class FixedNoise:
    """A generator stand-in returning chosen draws, to check the arithmetic by hand."""

    def __init__(self, uniform: float, normal: float) -> None:
        self.uniform, self.normal_value = uniform, normal

    def random(self) -> float:
        return self.uniform

    def normal(self, loc: float, scale: float) -> float:
        assert (loc, scale) == (0.0, 25.0)
        return self.normal_value


def test_caption_prompt_length_hint_arithmetic() -> None:
    # n = 100 + 10.4 = 110.4 -> int 110 -> 110 // 15 = 7
    assert mt.caption_prompt("long_caption", 100, FixedNoise(0.5, 10.4)) == " long_caption 7:"
    # n = 100 - 40.9 = 59.1 -> 59 // 15 = 3
    assert mt.caption_prompt("transcript", 100, FixedNoise(0.5, -40.9)) == " transcript 3:"
    # negative n is floored at 0
    assert mt.caption_prompt("transcript", 5, FixedNoise(0.5, -30.0)) == " transcript 0:"
    # below the 10% threshold: style without a length
    assert mt.caption_prompt("long_caption", 100, FixedNoise(0.09, 0.0)) == " long_caption:"
    assert mt.caption_prompt_for_inference() == " long_caption 65:"


def test_chat_prompt() -> None:
    assert mt.chat_prompt("What is this?") == " User: What is this? Assistant:"
    assert mt.chat_prompt("Color?", style="vqa2") == " User: vqa2: Color? Assistant:"


def test_parse_capqa_turns() -> None:
    question = "[USER] What is it? [ASSISTANT] A dog. [USER] What colour?"
    assert mt.parse_capqa(question, " Brown. ") == [
        ("What is it?", "A dog."),
        ("What colour?", "Brown."),
    ]
    assert mt.parse_capqa("Plain question?", "Yes.") == [("Plain question?", "Yes.")]
    assert mt.parse_capqa("[USER] q", "a") == [("q", "a")]
