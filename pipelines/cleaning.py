"""The clean stage: a spoken transcript becomes a written caption, PixMo style.

1. `rule_clean` removes speech artefacts by rule: fillers ("um", "you know", filler
   "like"), stutters ("th- the"), false starts ("there is a- there are two"), immediate
   repetitions ("the the"), and normalises spaces, punctuation and capitals.
2. The LLM rewrites that text with `PROMPT` (keep every detail, invent nothing).
3. `validate` checks the rewrite: it must keep at least `min_recall` of the transcript's
   content terms (see pipelines.text_checks), add no number or name the transcript lacks,
   be non-empty and not absurdly long. A failed rewrite is retried once with
   `STRICT_PROMPT`; a second failure falls back to the rule-based text, flagged with the
   reasons.

`clean_transcript` raises `LLMUnavailable` when the endpoint cannot be reached (the
caller retries later) and `LLMError` only for configuration errors (authentication,
unknown model); a malformed answer counts as a failed attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipelines import text_checks
from pipelines.llm import LLMClient, LLMError
from pipelines.rules import rule_clean

PROMPT_VERSION = "clean-v1"
DEFAULT_MIN_RECALL = 0.75
# A rewrite may be longer than the transcript (full sentences), not an essay.
MAX_LENGTH_RATIO = 2.0
MAX_LENGTH_SLACK = 20

PROMPT = (
    "You edit transcripts of people describing an image out loud. Rewrite the user's "
    "transcript as a clean written description of the image.\n"
    "- Keep every detail: objects, counts, colours, sizes, positions, text written in the "
    "image, the background and the overall scene.\n"
    "- Remove speech artefacts: filler words, repetitions, false starts, self-corrections "
    "(keep the corrected version).\n"
    "- Invent nothing: no new objects, numbers or names.\n"
    "- Keep the speaker's order and wording where possible; do not summarise.\n"
    "Reply with the description only, without any preamble."
)
STRICT_PROMPT = (
    "Copy the user's text and fix only grammar and punctuation. Keep every word that "
    "names an object, a colour, a number, a position or written text. Do not add any "
    "word, number or name that is not in the text. Do not shorten it. Reply with the "
    "corrected text only."
)


@dataclass(frozen=True)
class CleanResult:
    """What the clean stage stores beside the raw transcript."""

    rule_text: str
    text: str
    prompt_version: str
    model_name: str
    llm_attempts: int
    used_fallback: bool
    flagged: bool
    flag_reasons: list[str] = field(default_factory=list)


# --- validation -------------------------------------------------------------------------

_PREAMBLE_RE = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course)\b[^\n]*?[.!:]\s*)?"
    r"(?:(?:here(?:'s| is)|below is)[^\n:]*:|(?:the )?(?:cleaned|rewritten|corrected|edited)?"
    r"\s*(?:caption|description|text|version)\s*:)\s*",
    re.IGNORECASE,
)


def strip_preamble(text: str) -> str:
    """Drop a leading "Here is the cleaned caption:"-style line and wrapping quotes."""
    text = _PREAMBLE_RE.sub("", text.strip(), count=1).strip()
    if len(text) > 1 and text[0] in "\"“'" and text[-1] in "\"”'":
        text = text[1:-1].strip()
    return text


def validate(
    output: str, sources: list[str], *, terms: set[str], min_recall: float, max_words: int
) -> list[str]:
    """Reasons why `output` is not an acceptable rewrite of `sources` (empty: fine).

    `terms` are the content terms the output must keep (at least `min_recall` of them).
    """
    if not output.strip():
        return ["empty output"]
    reasons = []
    score, missing = text_checks.recall(terms, output)
    if score < min_recall:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        reasons.append(f"low content recall {score:.2f} < {min_recall:.2f} (missing: {shown})")
    invented = text_checks.novel_numbers(output, sources)
    if invented:
        reasons.append(f"numbers not in the source: {', '.join(invented[:8])}")
    named = text_checks.novel_names(output, sources)
    if named:
        reasons.append(f"names not in the source: {', '.join(named[:8])}")
    words = text_checks.word_count(output)
    if words > max_words:
        reasons.append(f"too long: {words} words, at most {max_words}")
    return reasons


# --- the stage --------------------------------------------------------------------------


def _max_tokens(words: int) -> int:
    # About 1.4 tokens per English word, room for the longer written form, a sane cap.
    return min(1536, 48 + 3 * words)


def _retry_prompt(reasons: list[str]) -> str:
    return STRICT_PROMPT + "\nYour previous answer was rejected: " + "; ".join(reasons) + "."


def clean_transcript(
    text: str, *, client: LLMClient, min_recall: float = DEFAULT_MIN_RECALL
) -> CleanResult:
    """Clean one transcript: rules, then the LLM, validated, with one stricter retry."""
    rule_text = rule_clean(text)
    if not rule_text:
        return CleanResult(
            rule_text="",
            text="",
            prompt_version=PROMPT_VERSION,
            model_name=client.model,
            llm_attempts=0,
            used_fallback=True,
            flagged=True,
            flag_reasons=["empty transcript"],
        )
    terms = text_checks.content_terms(rule_text)
    words = text_checks.word_count(rule_text)
    max_words = int(MAX_LENGTH_RATIO * words) + MAX_LENGTH_SLACK
    reasons: list[str] = []
    flag_reasons: list[str] = []
    model_name = client.model
    for attempt in (1, 2):
        system = PROMPT if attempt == 1 else _retry_prompt(reasons)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": rule_text},
        ]
        try:
            result = client.complete(messages, max_tokens=_max_tokens(words))
        except LLMError as exc:
            if exc.is_configuration:
                raise
            reasons = [f"LLM error: {exc}"]
        else:
            model_name = result.model
            output = strip_preamble(result.text)
            reasons = validate(
                output, [rule_text, text], terms=terms, min_recall=min_recall, max_words=max_words
            )
            if not reasons:
                return CleanResult(
                    rule_text=rule_text,
                    text=output,
                    prompt_version=PROMPT_VERSION,
                    model_name=model_name,
                    llm_attempts=attempt,
                    used_fallback=False,
                    flagged=False,
                )
        flag_reasons += [f"attempt {attempt}: {reason}" for reason in reasons]
    return CleanResult(
        rule_text=rule_text,
        text=rule_text,
        prompt_version=PROMPT_VERSION,
        model_name=model_name,
        llm_attempts=2,
        used_fallback=True,
        flagged=True,
        flag_reasons=flag_reasons,
    )
