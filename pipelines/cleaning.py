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


# --- rule-based pre-clean ---------------------------------------------------------------

_FILLER_RE = re.compile(r",?\s*\b(?:u+m+|u+h+m*|e+r+m+|er|h+m+|mhm|ah+)\b,?", re.IGNORECASE)
_YOU_KNOW_RE = re.compile(
    r",?\s*\byou know\b(?!\s+(?:what|how|why|where|who|whether|if)\b),?", re.IGNORECASE
)
_I_MEAN_RE = re.compile(r",?\s*\bI mean\b,?", re.IGNORECASE)
_LIKE_COMMA_RE = re.compile(r"(,\s*like\s*,)|(\blike\s*,)|(^\s*like\s+)", re.IGNORECASE)
_LIKE_QUANTITY_RE = re.compile(
    r"\b(is|are|was|were|'s|’s|be)\s+like\s+"
    r"(?=(?:\d|a lot|about|around|maybe|" + "|".join(sorted(text_checks.NUMBER_WORDS)) + r")\b)",
    re.IGNORECASE,
)
_OPENER_RE = re.compile(
    r"(^\s*|[.!?]\s+)(?:(?:okay|ok|alright|all right|yeah)\b,?|(?:and )?so\b(?:,|"
    r"(?=\s+(?:this|there|the|it|i|here|we|in|on|that|a|an)\b))|"
    r"(?:well|right|basically|actually|now),)\s*",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"[\w']+(?:-[\w']+)*-?|—|–|--|[.,!?;:]|\S")
_DASHES = {"—", "–", "--", "-"}
_SENTENCE_END = {".", "!", "?"}
# Immediate repetition of these words can be grammatical ("that that", "had had").
_REPEAT_OK = {"that", "had"}
_FALSE_START_WINDOW = 8
_SUSPENDED_HYPHEN = {"or", "and", "to"}


def _remove_fillers(text: str) -> str:
    text = _FILLER_RE.sub(" ", text)
    text = _YOU_KNOW_RE.sub(" ", text)
    text = _I_MEAN_RE.sub(" ", text)
    text = _LIKE_COMMA_RE.sub(" ", text)
    text = _LIKE_QUANTITY_RE.sub(lambda m: m.group(1) + " ", text)
    text = " ".join(text.split())
    while True:
        opened = _OPENER_RE.sub(lambda m: m.group(1), text)
        if opened == text:
            return text
        text = opened


def _is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "'"


def _next_words(tokens: list[str], start: int, n: int) -> list[str]:
    """Up to `n` words after `start` in the same sentence, lowercased."""
    found: list[str] = []
    for token in tokens[start:]:
        if token in _SENTENCE_END or len(found) == n:
            break
        if _is_word(token):
            found.append(token.rstrip("-").lower())
    return found


def _restart_at(before: list[str], following: list[str], window: int) -> int | None:
    """Index of the nearest earlier occurrence of the words `following` in the same
    sentence, starting within `window` words of the end."""
    words = []  # (index in before, lowercased word without "'s"), nearest last
    for k in range(len(before) - 1, -1, -1):
        if before[k] in _SENTENCE_END:
            break
        if _is_word(before[k]):
            words.append((k, before[k].rstrip("-").lower().split("'")[0]))
    words.reverse()
    n = len(following)
    for pos in range(len(words) - 1, max(len(words) - window, 0) - 1, -1):
        if [w for _, w in words[pos : pos + n]] == following:
            return words[pos][0]
    return None


def _remove_cutoffs(tokens: list[str]) -> list[str]:
    """Stutters ("th- the") and false starts ("there is a- there are two").

    A word cut off with a hyphen and followed by a word the speaker said a little
    earlier in the sentence marks a restart: everything from that earlier word is
    dropped. Any other cut-off fragment is dropped alone.
    """
    result: list[str] = []
    for i, token in enumerate(tokens):
        if token in _DASHES:
            result.append(",")  # a spoken pause; a dash alone is too ambiguous to cut at
            continue
        if not (len(token) > 1 and token.endswith("-") and _is_word(token)):
            result.append(token)
            continue
        following = _next_words(tokens, i + 1, 1)
        fragment = token.rstrip("-").lower()
        first = following[0] if following else ""
        if first in _SUSPENDED_HYPHEN:
            result.append(token)  # "five- or six-year-old"
            continue
        if first.startswith(fragment):
            continue  # a stutter: drop the fragment
        restart = [first.split("'")[0]]
        k = _restart_at([*result, fragment], restart, _FALSE_START_WINDOW) if first else None
        if k is not None:
            del result[k:]
    return result


def _remove_repeats(tokens: list[str]) -> list[str]:
    """Drop an n-gram (n = 3, 2, 1) that immediately repeats, commas between ignored."""
    words = list(tokens)
    changed = True
    while changed:
        changed = False
        for n in (3, 2, 1):
            i = 0
            while i < len(words):
                a = [w.lower() for w in words[i : i + n]]
                j = i + n
                if j < len(words) and words[j] == ",":
                    j += 1
                b = [w.lower() for w in words[j : j + n]]
                if (
                    len(a) == n
                    and a == b
                    and all(_is_word(w) for w in a)
                    and not (n == 1 and a[0] in _REPEAT_OK)
                ):
                    del words[i:j]
                    changed = True
                else:
                    i += 1
    return words


def _join(tokens: list[str]) -> str:
    parts: list[str] = []
    for token in tokens:
        if not _is_word(token):
            if not parts or parts[-1] in ".,!?;:":
                if parts and token in _SENTENCE_END and parts[-1] in ",;:":
                    parts[-1] = token  # ", ." -> "."
                continue  # leading or doubled punctuation
            parts.append(token)
        else:
            parts.append(token)
    text = ""
    for part in parts:
        text += part if (not text or not _is_word(part)) else " " + part
    return text


def _capitalise(text: str) -> str:
    text = re.sub(r"\bi\b(?=$|[\s,.!?;:'])", "I", text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if text and text[-1].isalnum():
        text += "."
    return text


def rule_clean(text: str) -> str:
    """The transcript without speech artefacts, with tidy spacing and capitals."""
    text = " ".join(text.replace("’", "'").split())
    text = _remove_fillers(text)
    tokens = _TOKEN_RE.findall(text)
    tokens = _remove_cutoffs(tokens)
    tokens = _remove_repeats(tokens)
    return _capitalise(_join(tokens))


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
