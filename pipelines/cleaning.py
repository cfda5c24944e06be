"""The clean stage: a spoken transcript becomes a written caption, PixMo style.

1. `rule_clean` (pipelines.rules) removes speech artefacts deterministically: fillers,
   stutters, restarts, repetitions, repeated sentences and resolved self-corrections.
2. Only when an LLM is configured for it (`client` given; see the README: the bundled
   small models measured no better than the rules), the LLM edits the rule text with
   `PROMPT`, and `validate` checks the answer against the rule text and the transcript.
   A failed answer is retried once with `STRICT_PROMPT`; a second failure keeps the rule
   text, flagged with the reasons.
3. Words the ASR was unsure of are listed as a flag on every caption that contains
   them, whichever path wrote it, so a reviewer listens before accepting.

`clean_transcript` raises `LLMUnavailable` when the endpoint cannot be reached (the
caller retries later) and `LLMError` only for configuration errors (authentication,
unknown model); a malformed answer counts as a failed attempt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines import text_checks
from pipelines.llm import LLMClient, LLMError
from pipelines.rules import rule_clean

__all__ = ["CleanResult", "clean_transcript", "rule_clean", "strip_preamble", "validate"]

PROMPT_VERSION = "clean-v2"
RULES_MODEL = "rules"  # model_name of a caption the rules alone wrote
DEFAULT_MIN_RECALL = 0.9
# An edit may restore a few words (articles, a verb), not write an essay.
MAX_LENGTH_RATIO = 1.5
MAX_LENGTH_SLACK = 10
# Words an edit may change or add, as a share of the rule text's: a few grammar fixes
# ("there's three" -> "there are three"), not a paraphrase, which measured further from
# what was said (benchmarks/clean_quality.py).
MAX_REWORDING = 0.1

PROMPT = (
    "You copy-edit transcripts of people describing an image out loud. The user's text "
    "has already had most fillers removed. Return the same description as clean written "
    "English.\n"
    "- Delete what is left of speech artefacts: filler words, stutters, words or sentences "
    "said twice, false starts, and the abandoned part of a self-correction (keep the "
    "corrected version).\n"
    "- Fix capitals and punctuation.\n"
    "- Keep every other word and the order: every object, count, colour, size, position, "
    "text written in the image and the background. Do not reword or summarise.\n"
    "- Add nothing: no new objects, numbers or names, no comments.\n"
    "Reply with the edited description only."
)
STRICT_PROMPT = (
    "Copy the user's text and fix only punctuation and capital letters. Keep every word "
    "that names an object, a colour, a number, a position or written text. Do not add, "
    "explain or shorten anything. Reply with the corrected text only."
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


def output_problems(
    output: str, sources: list[str], *, instructions: list[str], finish_reason: str = ""
) -> list[str]:
    """Derailments that no faithful rewrite of `sources` shows (shared with summaries)."""
    if not output.strip():
        return ["empty output"]
    reasons = []
    if finish_reason == "length":
        reasons.append("stopped at max_tokens (a runaway answer)")
    for reason in (
        text_checks.loop_reason(output),
        text_checks.commentary_reason(output, sources),
        text_checks.copied_reason(output, instructions, sources),
        text_checks.salad_reason(output, sources),
    ):
        if reason:
            reasons.append(reason)
    return reasons


def _shown(items: Sequence[str]) -> str:
    return ", ".join(items[:8]) + (", ..." if len(items) > 8 else "")


def validate(
    output: str,
    *,
    rule_text: str,
    transcript: str,
    min_recall: float,
    instructions: Sequence[str] = (),
    finish_reason: str = "",
) -> list[str]:
    """Reasons why `output` is not an acceptable edit of `rule_text` (empty: fine).

    Against the rule text: its content terms (at least `min_recall` kept) and exactly its
    numbers; no name that neither text has; no word the speaker took back (in the
    transcript but removed by the rules as the wrong half of a self-correction).
    """
    sources = [rule_text, transcript]
    reasons = output_problems(
        output, sources, instructions=list(instructions), finish_reason=finish_reason
    )
    if reasons == ["empty output"]:
        return reasons
    score, missing = text_checks.recall(text_checks.content_terms(rule_text), output)
    if score < min_recall:
        reasons.append(
            f"lost content words: recall {score:.2f} < {min_recall:.2f} (missing: {_shown(missing)})"
        )
    said, wrote = text_checks.numbers(rule_text), text_checks.numbers(output)
    taken_back = (text_checks.content_terms(transcript) - text_checks.content_terms(rule_text)) & (
        text_checks.content_terms(output)
    )
    if taken_back:
        reasons.append(f"undoes a self-correction: {_shown(sorted(taken_back))}")
    invented = sorted(wrote - said - text_checks.implied_numbers(rule_text) - taken_back)
    dropped = sorted(said - wrote - text_checks.implied_numbers(output))
    if invented or dropped:
        reasons.append(
            f"numbers changed: {_shown(dropped) or 'none'} said, {_shown(invented) or 'none'} added"
        )
    named = text_checks.novel_names(output, sources)
    if named:
        reasons.append(f"names not in the source: {_shown(named)}")
    changed = text_checks.rewording(output, rule_text)
    if changed > MAX_REWORDING:
        reasons.append(f"reworded: {changed:.0%} of the words changed or added (a copy-edit "
                       f"deletes and fixes punctuation; at most {MAX_REWORDING:.0%})")  # fmt: skip
    words, limit = text_checks.word_count(output), max_words(rule_text)
    if words > limit:
        reasons.append(f"too long: {words} words, at most {limit}")
    return reasons


def max_words(rule_text: str) -> int:
    return int(MAX_LENGTH_RATIO * text_checks.word_count(rule_text)) + MAX_LENGTH_SLACK


# --- the stage --------------------------------------------------------------------------


def _max_tokens(words: int) -> int:
    # About 1.4 tokens per English word, a little room, a sane cap: a loop stops early.
    return min(1024, 32 + 2 * words)


def uncertain_flag(uncertain: Sequence[str]) -> list[str]:
    """The flag that lists the ASR's unsure words (none: no flag)."""
    if not uncertain:
        return []
    return [f"uncertain ASR words, listen before accepting: {_shown(list(uncertain))}"]


def _llm_edit(
    text: str, rule_text: str, client: LLMClient, min_recall: float
) -> tuple[tuple[int, str] | None, str, list[str]]:
    """Ask for the edit, at most twice: ((attempt, text) or None, model name, reasons)."""
    flag_reasons: list[str] = []
    model_name = client.model
    for attempt in (1, 2):
        messages = [
            {"role": "system", "content": PROMPT if attempt == 1 else STRICT_PROMPT},
            {"role": "user", "content": rule_text},
        ]
        try:
            result = client.complete(
                messages, max_tokens=_max_tokens(text_checks.word_count(rule_text))
            )
        except LLMError as exc:
            if exc.is_configuration:
                raise
            reasons = [f"LLM error: {exc}"]
        else:
            model_name = result.model
            output = strip_preamble(result.text)
            reasons = validate(
                output,
                rule_text=rule_text,
                transcript=text,
                min_recall=min_recall,
                instructions=[PROMPT, STRICT_PROMPT],
                finish_reason=result.finish_reason,
            )
            if not reasons:
                return (attempt, output), model_name, []
        flag_reasons += [f"attempt {attempt}: {reason}" for reason in reasons]
    return None, model_name, flag_reasons


def clean_transcript(
    text: str,
    *,
    client: LLMClient | None,
    min_recall: float = DEFAULT_MIN_RECALL,
    uncertain: Sequence[str] = (),
) -> CleanResult:
    """Clean one transcript: rules, then (with a client) the validated LLM edit.

    `uncertain` are the transcript's words the ASR gave a low probability; a caption
    is flagged with them (the text is not changed for them).
    """
    rule_text = rule_clean(text)
    unsure = uncertain_flag(uncertain)
    if not rule_text:
        return CleanResult(
            "", "", PROMPT_VERSION, RULES_MODEL, 0, False, True, ["empty transcript"]
        )
    if client is None:
        return CleanResult(
            rule_text, rule_text, PROMPT_VERSION, RULES_MODEL, 0, False, bool(unsure), unsure
        )
    edit, model_name, flag_reasons = _llm_edit(text, rule_text, client, min_recall)
    if edit is not None:
        return CleanResult(
            rule_text, edit[1], PROMPT_VERSION, model_name, edit[0], False, bool(unsure), unsure
        )
    return CleanResult(
        rule_text=rule_text,
        text=rule_text,
        prompt_version=PROMPT_VERSION,
        model_name=model_name,
        llm_attempts=2,
        used_fallback=True,
        flagged=True,
        flag_reasons=["LLM edit rejected, the rule text is kept", *flag_reasons, *unsure],
    )
