"""Which of PixMo-Cap's seven guiding questions a description covers, by rules over words.

The capture page ticks the questions off while the annotator speaks (P12 live guidance),
and the coverage at submit time is stored with the recording. It is guidance, not a
grade: each rule looks for the kind of words an answer to its question needs (a number
for "objects and their counts", a spatial term for "positions", a colour or style word
for "style and color", ...), and names the words it found (`evidence`) so that a person
can see why a question ticked.

The rules read spoken-and-transcribed English: Whisper writes numbers as digits or
words, rarely writes quotation marks, and a reader says "the sign says open" rather
than quoting. No Django here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_QUOTED = re.compile(r"[\"“”‘’«»]([^\"“”«»]{1,80})[\"“”«»]")
_DIGITS = re.compile(r"^\d+(?:st|nd|rd|th|s)?$")


@dataclass(frozen=True)
class Question:
    """One guiding question: a stable key, the text shown, and what its rule looks for."""

    key: str
    text: str
    words: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()


def _words(*groups: str) -> frozenset[str]:
    return frozenset(word for group in groups for word in group.split())


NUMBER_WORDS = _words(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen",
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty",
    "seventy eighty ninety hundred hundreds thousand thousands million dozen dozens",
    "one single both couple pair pairs several multiple numerous twice",
    "first second third fourth fifth",
)
SPATIAL_WORDS = _words(
    "left right top bottom middle center centre centered centred above below under",
    "underneath beneath behind beside besides between near nearby next corner corners",
    "foreground upper lower edge edges side sides atop across opposite around inside",
    "outside along leftmost rightmost far front",
)
SPATIAL_PHRASES = ("in front of", "on top of", "next to", "close to", "to the side")
TEXT_WORDS = _words(
    "says say saying said reads read reading written writing writes text texts word",
    "words letter letters lettering spelled spells caption captioned title titled",
    "headline label labeled labelled logo slogan inscription inscribed handwriting",
    "handwritten typed font printed signage",
)
TEXT_PHRASES = ("sign that says", "the name", "brand name")
DETAIL_WORDS = _words(
    "detail details detailed subtle subtly small tiny little slight slightly faint",
    "faintly barely partially partly shadow shadows reflection reflections reflected",
    "texture textured pattern patterned patterns scratch scratches scratched crack",
    "cracked cracks worn stain stains stained wrinkle wrinkles wrinkled dust dusty",
    "rust rusty dent dented chipped peeling torn frayed smudge smudged blurry blurred",
    "notice noticeable noticed visible glare droplets specks spots spotted stripe",
    "stripes striped dotted",
)
DETAIL_PHRASES = ("if you look closely", "you can see", "you can also see", "hard to see")
BACKGROUND_WORDS = _words(
    "background backdrop backgrounds distance distant horizon scenery surroundings",
    "sky skyline",
)
BACKGROUND_PHRASES = ("in the back", "at the back", "far away", "behind them", "behind it")
COLOUR_WORDS = _words(
    "red orange yellow green blue purple violet pink brown black white gray grey",
    "silver gold golden beige tan navy teal turquoise maroon cream crimson magenta",
    "cyan lime olive ivory bronze copper reddish yellowish greenish bluish pinkish",
    "brownish grayish greyish colorful colourful colored coloured color colour colors",
    "colours pastel monochrome monochromatic bright dark pale vivid vibrant muted",
    "saturated neon",
)
STYLE_WORDS = _words(
    "style styled photo photograph photographed photography painting painted drawing",
    "drawn sketch sketched illustration illustrated cartoon cartoonish anime comic",
    "watercolor watercolour oil digital rendering rendered render 3d realistic",
    "photorealistic abstract minimalist vintage retro lighting lit sunlit shot closeup",
    "screenshot poster graphic clipart meme diagram chart sepia grainy",
)
STYLE_PHRASES = ("black and white", "close up", "taken from", "in the style of")
FIRST_GLANCE_PHRASES = (
    "this is a",
    "this is an",
    "this image",
    "this picture",
    "this photo",
    "the image shows",
    "the image is",
    "the picture shows",
    "the picture is",
    "the photo shows",
    "the photo is",
    "image of",
    "picture of",
    "photo of",
    "photograph of",
    "drawing of",
    "painting of",
    "screenshot of",
    "illustration of",
    "at first glance",
    "first glance",
    "it's a",
    "it is a",
    "there is a",
    "there's a",
    "i see a",
    "we see a",
    "shows a",
    "overall",
)

QUESTIONS: tuple[Question, ...] = (
    Question("first_glance", "What is the image at first glance?", phrases=FIRST_GLANCE_PHRASES),
    Question("objects_counts", "What are the objects and their counts?", words=NUMBER_WORDS),
    Question("text", "What does the text say?", words=TEXT_WORDS, phrases=TEXT_PHRASES),
    Question(
        "positions",
        "What are the positions of the objects?",
        words=SPATIAL_WORDS,
        phrases=SPATIAL_PHRASES,
    ),
    Question(
        "details", "What subtle details are noticeable?", words=DETAIL_WORDS, phrases=DETAIL_PHRASES
    ),
    Question(
        "background",
        "What is in the background?",
        words=BACKGROUND_WORDS,
        phrases=BACKGROUND_PHRASES,
    ),
    Question(
        "style_color",
        "What is the style and color?",
        words=COLOUR_WORDS | STYLE_WORDS,
        phrases=STYLE_PHRASES,
    ),
)
QUESTION_KEYS: tuple[str, ...] = tuple(q.key for q in QUESTIONS)


@dataclass(frozen=True)
class QuestionCoverage:
    key: str
    question: str
    covered: bool
    evidence: tuple[str, ...]  # the words or phrases that ticked it, in order of appearance


@dataclass(frozen=True)
class Coverage:
    questions: tuple[QuestionCoverage, ...]
    words: int  # words in the text judged

    @property
    def covered_keys(self) -> list[str]:
        return [q.key for q in self.questions if q.covered]

    @property
    def open_questions(self) -> list[str]:
        """The texts of the questions not covered yet, in the page's order."""
        return [q.question for q in self.questions if not q.covered]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what the live endpoint answers and what a recording stores."""
        return {
            "questions": [
                {
                    "key": q.key,
                    "question": q.question,
                    "covered": q.covered,
                    "evidence": list(q.evidence),
                }
                for q in self.questions
            ],
            "covered": len(self.covered_keys),
            "total": len(self.questions),
            "words": self.words,
        }


MAX_EVIDENCE = 3


def _tokens(text: str) -> list[str]:
    # Curly apostrophes become straight ones, so "there’s" matches "there's".
    return _WORD.findall(text.lower().replace("’", "'"))


def _is_count(token: str) -> bool:
    return token in NUMBER_WORDS or bool(_DIGITS.match(token))


def _evidence(question: Question, tokens: list[str], joined: str, text: str) -> list[str]:
    """What in the text answers `question`: phrases first, then single words, then extras."""
    found: list[str] = []
    for phrase in question.phrases:
        if f" {phrase} " in joined:
            found.append(phrase)
    for token in tokens:
        matches = token in question.words or (question.key == "objects_counts" and _is_count(token))
        if matches and token not in found:
            found.append(token)
    if question.key == "text":
        found.extend(f'"{quote.strip()}"' for quote in _QUOTED.findall(text) if quote.strip())
    return found[:MAX_EVIDENCE]


def coverage_of(text: str) -> Coverage:
    """The coverage of the seven questions by `text` (a transcript, live or final)."""
    tokens = _tokens(text)
    joined = f" {' '.join(tokens)} "
    judged = []
    for question in QUESTIONS:
        evidence = _evidence(question, tokens, joined, text)
        judged.append(
            QuestionCoverage(
                key=question.key,
                question=question.text,
                covered=bool(evidence),
                evidence=tuple(evidence),
            )
        )
    return Coverage(questions=tuple(judged), words=len(tokens))
