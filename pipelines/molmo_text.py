"""Molmo's text formats for points, counts and clock times (PIXMO_SPEC.md §3).

Points are written in percent of image width/height with one decimal:
``<point x="61.5" y="40.6" alt="dog">dog</point>`` for one point and
``<points x1=".." y1=".." x2=".." y2=".." alt="dogs">dogs</points>`` for several (indices
from 1, sorted left-to-right then top-to-bottom). The parsers are deliberately lenient:
they read model output, which may be truncated, unquoted or otherwise malformed.
Also here: counting and clock answers, the caption-stage and chat prompts, and CapQA's
multi-turn markers.

Pure functions only: the annotation platform (exports, previews) and the model service
(training targets, evaluation) both import this module, so it must not import Django or
torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Point = tuple[float, float]
"""(x, y) in percent of image width/height, 0..100."""

NONE_ANSWER = "There are none."
CLOCK_QUESTION = "What time is being shown?"
CLOCK_HIDDEN_ANSWER = "The clock's hands are not shown, so the time cannot be read."

# Characters that would end the alt="..." attribute or open/close a tag. They are
# replaced by a space (then whitespace is collapsed) rather than escaped: the model only
# ever needs to read the label back, and entity escapes would teach it odd tokens.
_LABEL_BAD_CHARS = re.compile(r"[\"<>\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


def clean_label(label: str) -> str:
    """Return ``label`` safe to place inside ``alt="..."`` and between the tags."""
    return _SPACES.sub(" ", _LABEL_BAD_CHARS.sub(" ", label)).strip()


def pixels_to_percent(x: float, y: float, width: float, height: float) -> Point:
    """Convert a pixel position to percent of the image's width and height."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return 100.0 * x / width, 100.0 * y / height


def percent_to_pixels(x: float, y: float, width: float, height: float) -> Point:
    """Convert a percent position (0..100) to pixels of an image of the given size."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return x * width / 100.0, y * height / 100.0


def _fmt(value: float) -> str:
    # Clamp before rounding so an annotation a hair outside the image still writes 0..100.
    return f"{min(max(value, 0.0), 100.0):.1f}"


def sort_points(points: Iterable[Point]) -> list[Point]:
    """Sort left-to-right, then top-to-bottom, on the values as they will be written.

    Sorting on the one-decimal values (not the raw floats) keeps the order in the text
    consistent with what a reader of the text sees.
    """
    return sorted(points, key=lambda p: (float(_fmt(p[0])), float(_fmt(p[1]))))


def points_to_text(points: Sequence[Point], label: str) -> str:
    """Write points as Molmo's ``<point>``/``<points>`` element, or "There are none."."""
    if len(points) == 0:
        return NONE_ANSWER
    name = clean_label(label)
    ordered = sort_points(points)
    if len(ordered) == 1:
        x, y = ordered[0]
        return f'<point x="{_fmt(x)}" y="{_fmt(y)}" alt="{name}">{name}</point>'
    coords = " ".join(
        f'x{i}="{_fmt(x)}" y{i}="{_fmt(y)}"' for i, (x, y) in enumerate(ordered, start=1)
    )
    return f'<points {coords} alt="{name}">{name}</points>'


def count_answer(points: Sequence[Point], label: str) -> str:
    """Molmo's counting answer: ``Counting the <points ...>label</points> shows a total of N.``

    A single point uses the ``<point>`` element (the same writer as pointing answers);
    zero points answer "There are none.".
    """
    if len(points) == 0:
        return NONE_ANSWER
    return f"Counting the {points_to_text(points, label)} shows a total of {len(points)}."


@dataclass(frozen=True)
class PointedObject:
    """One ``<point>``/``<points>`` element read back from text."""

    label: str
    points: list[Point]


# An opening tag, possibly unterminated (model output cut off by the length limit).
_TAG = re.compile(r"<(points?)\b([^<>]*)(>|$)", re.IGNORECASE)
# name = "value" | 'value' | value ; attribute names are letters then optional digits.
_ATTR = re.compile(r"([A-Za-z]+)(\d*)\s*=\s*(?:\"([^\"]*)\"?|'([^']*)'?|([^\s\"'>]+))")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def _to_percent(value: str) -> float | None:
    match = _NUMBER.search(value)
    if match is None:
        return None
    number = float(match.group(0))
    # Out-of-range or non-finite values are model errors, not points on the image.
    if not math.isfinite(number) or number < 0.0 or number > 100.0:
        return None
    return number


def _points_from_attrs(attrs: str) -> tuple[list[Point], str]:
    xs: dict[int, float] = {}
    ys: dict[int, float] = {}
    alt = ""
    for name, index, dq, sq, bare in _ATTR.findall(attrs):
        value = dq or sq or bare
        key = name.lower()
        if key == "alt":
            alt = value
            continue
        if key not in ("x", "y"):
            continue
        number = _to_percent(value)
        if number is None:
            continue
        # A bare "x" (single <point>) is index 1; the first value for an index wins.
        (xs if key == "x" else ys).setdefault(int(index) if index else 1, number)
    points = [(xs[i], ys[i]) for i in sorted(xs) if i in ys]
    return points, alt


def parse_pointed_objects(text: str) -> list[PointedObject]:
    """Read every ``<point>``/``<points>`` element in ``text``, tolerating malformed ones.

    Coordinates without a partner, outside 0..100, or not numbers are dropped; unquoted
    or single-quoted attributes and unterminated tags are accepted. The label is the
    element's content when present, else its ``alt`` attribute.
    """
    objects: list[PointedObject] = []
    for match in _TAG.finditer(text):
        points, alt = _points_from_attrs(match.group(2))
        label = alt
        if match.group(3) == ">":
            tag = match.group(1).lower()
            close = re.compile(rf"</{tag}\s*>", re.IGNORECASE).search(text, match.end())
            if close is not None:
                label = text[match.end() : close.start()].strip() or alt
        objects.append(PointedObject(label=label.strip(), points=points))
    return objects


def parse_points(text: str) -> list[Point]:
    """All points in ``text`` (percent), in the order written; [] for none or garbage."""
    return [p for obj in parse_pointed_objects(text) for p in obj.points]


_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_COUNT_TOKEN = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
_TOTAL = re.compile(r"total\s+of\s+" + _COUNT_TOKEN + r"\b", re.IGNORECASE)
_ANY_COUNT = re.compile(r"\b" + _COUNT_TOKEN + r"\b", re.IGNORECASE)
_NONE = re.compile(r"\bnone\b|\bthere\s+(?:are|is)\s+no\b", re.IGNORECASE)


def _count_value(token: str) -> int:
    token = token.lower()
    return int(token) if token.isdigit() else _NUMBER_WORDS[token]


def parse_count(text: str) -> int | None:
    """The count stated by a counting answer, or None when it states none.

    "... a total of N." wins (digits or number words up to twenty); otherwise "none"
    means 0; otherwise the last number in the text (outside point tags, whose
    coordinates are not counts).
    """
    totals = _TOTAL.findall(text)
    if totals:
        return _count_value(totals[-1])
    if _NONE.search(text):
        return 0
    plain = _TAG.sub(" ", text)
    numbers = _ANY_COUNT.findall(plain)
    return _count_value(numbers[-1]) if numbers else None


def clock_answer(hour: int, minute: int) -> str:
    """``The time shown is H:MM.`` on a 12-hour dial (0 and 12 both read as 12)."""
    if not 0 <= minute <= 59:
        raise ValueError(f"minute must be 0..59, got {minute}")
    h12 = hour % 12 or 12
    return f"The time shown is {h12}:{minute:02d}."


_CLOCK = re.compile(r"\b(\d{1,2})\s*:\s*(\d{2})\b")


def parse_clock_answer(text: str) -> tuple[int, int] | None:
    """(hour 1..12, minute) read from a clock answer; None when no valid H:MM is in it.

    Hours are folded onto the 12-hour dial, so "14:05" reads as (2, 5).
    """
    for match in _CLOCK.finditer(text):
        hour, minute = int(match.group(1)), int(match.group(2))
        if 0 <= hour <= 23 and 0 <= minute <= 59:
            return hour % 12 or 12, minute
    return None


class NoiseSource(Protocol):
    """The two draws `caption_prompt` needs (a numpy Generator satisfies it)."""

    def random(self) -> float: ...

    def normal(self, loc: float, scale: float) -> float: ...


def caption_prompt(
    style: str,
    target_chars: int,
    rng: NoiseSource,
    no_length_prob: float = 0.1,
    noise_std: float = 25.0,
) -> str:
    """Caption-stage prompt `` {style} {n//15}:`` with n = target length + N(0, noise_std).

    Draw order is fixed (one uniform, then one normal only when a length is given) so the
    prompt is reproducible from the generator. n is truncated to an int and floored at 0.
    """
    if rng.random() < no_length_prob:
        return f" {style}:"
    n = target_chars + rng.normal(0.0, noise_std)
    return f" {style} {max(int(n), 0) // 15}:"


def caption_prompt_for_inference(style: str = "long_caption", length_hint: int = 65) -> str:
    """The caption prompt used at inference (Molmo's default length hint is 65)."""
    return f" {style} {length_hint}:"


def chat_prompt(question: str, style: str | None = None) -> str:
    """SFT user turn: `` User: {question} Assistant:``, with an optional academic prefix."""
    text = f"{style}: {question}" if style else question
    return f" User: {text} Assistant:"


_CAPQA_MARKER = re.compile(r"\[(USER|ASSISTANT)\]")


def parse_capqa(question: str, answer: str) -> list[tuple[str, str]]:
    """Split a CapQA item into (question, answer) turns.

    Multi-turn items hold ``[USER] q1 [ASSISTANT] a1 [USER] q2`` in `question`; the last
    user turn is answered by `answer`. Text before any marker is a user turn too.
    """
    parts = _CAPQA_MARKER.split(question)
    turns: list[tuple[str, str]] = []
    pending: str | None = parts[0].strip() or None
    for role, text in zip(parts[1::2], parts[2::2], strict=True):
        text = text.strip()
        if role == "USER":
            pending = f"{pending} {text}" if pending else text
        elif pending is not None:
            turns.append((pending, text))
            pending = None
    turns.append((pending or "", answer.strip()))
    return [t for t in turns if t[0] and t[1]]
