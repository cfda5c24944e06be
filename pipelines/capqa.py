"""CapQA: question-answer pairs written by a language-only LLM from a caption alone.

PixMo-CapQA: an LLM sees only a caption of an image and writes QA pairs about it;
prompts vary a topic and a writing style for diversity. Here the LLM must reply with
JSON (`{"pairs": [{"question": ..., "answer": ...}, ...]}`); every pair is validated:

- question and answer are non-empty;
- every content word and number of the answer is supported by the caption (a few
  words any answer may use, like "yes" or "visible", are allowed), so the answer says
  nothing the caption does not;
- neither loops (text_checks.loop_reason);
- the same question (case, spacing and punctuation aside) is kept once per image.

A multi-turn item (`multi_turn=True`: the pairs form one conversation) is stored as
one pair whose question holds the earlier turns with `[USER]` / `[ASSISTANT]` markers,
as the published dataset does, and whose answer is the last answer.

Rejections are short reasons ("not JSON", "unsupported words", ...) so a run can count
them; `detail` says more.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines import text_checks
from pipelines.llm import LLMClient, Message

PROMPT_VERSION = "capqa-v2"
DEFAULT_PAIRS = 3
MAX_TOKENS = 400
QUESTION_MAX_CHARS = 1000
ANSWER_MAX_CHARS = 2000

DEFAULT_TOPICS = (
    "the main objects and how many there are",
    "colours and materials",
    "where things are relative to each other",
    "any text written in the image",
    "what the people or animals are doing",
    "the background and setting",
    "small details that are easy to miss",
)
DEFAULT_STYLES = (
    "short and direct",
    "curious, like a child asking",
    "formal, like an exam question",
    "casual and conversational",
)

# Words an answer may use that no caption needs to contain.
_ANSWER_GENERIC_TEXT = """yes no not none image picture photo photograph visible shown show shows
see seen appear appears appearing caption described description mention mentioned mentions
tell say says stated there here also total about approximately"""
ANSWER_GENERIC = frozenset(_ANSWER_GENERIC_TEXT.split())

REJECT_NOT_JSON = "not JSON"
REJECT_NO_PAIRS = "no pairs"
REJECT_EMPTY_QUESTION = "empty question"
REJECT_EMPTY_ANSWER = "empty answer"
REJECT_UNSUPPORTED = "unsupported words"
REJECT_LOOP = "loop"
REJECT_DUPLICATE = "duplicate"
REJECT_TOO_LONG = "too long"

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Variation:
    topic: str
    style: str
    multi_turn: bool


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    multi_turn: bool = False


@dataclass(frozen=True)
class Rejection:
    reason: str  # one of the REJECT_* values
    detail: str = ""


@dataclass
class CapQAOutcome:
    items: list[QAItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    raw: str = ""
    model_name: str = ""
    prompt_version: str = PROMPT_VERSION
    variation: Variation | None = None


def pick_variation(
    rng: random.Random, topics: Sequence[str], styles: Sequence[str], multi_turn_share: float
) -> Variation:
    """One topic, one style, and whether the pairs form one conversation."""
    return Variation(
        topic=rng.choice(list(topics) or list(DEFAULT_TOPICS)),
        style=rng.choice(list(styles) or list(DEFAULT_STYLES)),
        multi_turn=rng.random() < multi_turn_share,
    )


# One worked example before the real request. Small local models (SmolLM2-135M) answer
# the bare instruction in prose ("Question 1: ..."), which no parser should guess at;
# after one example exchange they answer in the JSON form, and validation judges the
# content. The example's image is unrelated to any real one.
_EXAMPLE_CAPTION = "A black cat sleeps on a blue sofa. Two yellow pillows lie beside it."
_EXAMPLE_REPLY = json.dumps(
    {
        "pairs": [
            {"question": "What colour is the sofa?", "answer": "The sofa is blue."},
            {"question": "How many pillows are there?", "answer": "Two yellow pillows."},
        ]
    }
)


def _request(caption: str, variation: Variation, pairs: int) -> str:
    shape = (
        "The pairs form one conversation: each question follows on from the previous answer."
        if variation.multi_turn
        else "Each pair stands alone."
    )
    return (
        f"Description of the image (JSON string): {json.dumps(caption.strip(), ensure_ascii=False)}\n\n"
        f"Write {pairs} question-answer pairs about {variation.topic}. Write the questions "
        f"in a {variation.style} style. {shape}"
    )


def build_messages(
    caption: str, variation: Variation, *, pairs: int = DEFAULT_PAIRS
) -> list[Message]:
    """System instruction, one example exchange, then the request for `caption`."""
    system = (
        "You write question-answer pairs about an image from its description. You never "
        "see the image: answer only with facts stated in the description, using its words. "
        'Reply with JSON only, in this form: {"pairs": [{"question": "...", "answer": "..."}]}'
    )
    example = Variation(topic="objects and colours", style="plain", multi_turn=False)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _request(_EXAMPLE_CAPTION, example, 2)},
        {"role": "assistant", "content": _EXAMPLE_REPLY},
        {"role": "user", "content": _request(caption, variation, pairs)},
    ]


def _first_json(text: str) -> Any:
    """The first JSON object or array in `text` (fenced or bare); raises ValueError."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(candidate[start:])
                except json.JSONDecodeError:
                    continue
                return value
    raise ValueError("no JSON value found")


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) strings from the model's reply; raises ValueError when not JSON."""
    value = _first_json(text)
    if isinstance(value, dict):
        value = value.get("pairs", value.get("conversation", [value]))
    if not isinstance(value, list):
        raise ValueError("the JSON holds no list of pairs")
    pairs = []
    for entry in value:
        if isinstance(entry, dict):
            q, a = entry.get("question", ""), entry.get("answer", "")
            pairs.append((q if isinstance(q, str) else "", a if isinstance(a, str) else ""))
    return pairs


def unsupported_words(answer: str, caption: str) -> list[str]:
    """Content words and numbers of `answer` that `caption` does not contain (as written)."""
    allowed = text_checks.content_terms(caption) | {text_checks.stem(w) for w in ANSWER_GENERIC}
    missing = text_checks.content_terms(answer) - allowed
    found = {
        t for t in text_checks.tokens(answer) if text_checks.stem(t) in missing or t in missing
    }
    return sorted(found or missing)


def check_pair(question: str, answer: str, caption: str) -> Rejection | None:
    """Why this pair is refused, or None when it is valid."""
    if not question.strip():
        return Rejection(REJECT_EMPTY_QUESTION)
    if not answer.strip():
        return Rejection(REJECT_EMPTY_ANSWER)
    if len(question) > QUESTION_MAX_CHARS or len(answer) > ANSWER_MAX_CHARS:
        return Rejection(REJECT_TOO_LONG)
    for text in (question, answer):
        loop = text_checks.loop_reason(text)
        if loop:
            return Rejection(REJECT_LOOP, loop)
    missing = unsupported_words(answer, caption)
    if missing:
        return Rejection(REJECT_UNSUPPORTED, ", ".join(missing[:10]))
    return None


def question_key(question: str) -> str:
    """What makes two questions the same: their words, lowercased."""
    return " ".join(text_checks.tokens(question))


def as_conversation(pairs: Sequence[tuple[str, str]]) -> QAItem:
    """One multi-turn item: earlier turns inside the question with [USER]/[ASSISTANT]."""
    *earlier, (last_q, last_a) = pairs
    turns = [f"[USER] {q.strip()} [ASSISTANT] {a.strip()}" for q, a in earlier]
    question = " ".join([*turns, f"[USER] {last_q.strip()}"]) if turns else last_q.strip()
    return QAItem(question=question, answer=last_a.strip(), multi_turn=bool(turns))


def validate(
    text: str, caption: str, variation: Variation, *, seen_questions: Iterable[str] = ()
) -> CapQAOutcome:
    """The valid, new items in the model's reply and the reasons for the rest."""
    outcome = CapQAOutcome(raw=text, variation=variation)
    try:
        pairs = parse_pairs(text)
    except ValueError as exc:
        outcome.rejections.append(Rejection(REJECT_NOT_JSON, str(exc)))
        return outcome
    if not pairs:
        outcome.rejections.append(Rejection(REJECT_NO_PAIRS))
        return outcome
    seen = set(seen_questions)
    valid: list[tuple[str, str]] = []
    for question, answer in pairs:
        problem = check_pair(question, answer, caption)
        if problem is None and not variation.multi_turn and question_key(question) in seen:
            problem = Rejection(REJECT_DUPLICATE, question[:80])
        if problem is not None:
            outcome.rejections.append(problem)
            continue
        seen.add(question_key(question))
        valid.append((question.strip(), answer.strip()))
    if variation.multi_turn and valid:
        item = as_conversation(valid)
        if question_key(item.question) in set(seen_questions):
            outcome.rejections.append(Rejection(REJECT_DUPLICATE, item.question[:80]))
        else:
            outcome.items.append(item)
    else:
        outcome.items.extend(QAItem(q, a) for q, a in valid)
    return outcome


def generate(
    client: LLMClient,
    caption: str,
    variation: Variation,
    *,
    pairs: int = DEFAULT_PAIRS,
    seen_questions: Iterable[str] = (),
) -> CapQAOutcome:
    """Ask the LLM for pairs about `caption` and keep the valid ones (LLM errors propagate)."""
    result = client.complete(build_messages(caption, variation, pairs=pairs), max_tokens=MAX_TOKENS)
    outcome = validate(result.text, caption, variation, seen_questions=seen_questions)
    outcome.model_name = result.model
    return outcome
