"""The summary stage: one caption for an image from all of its cleaned transcripts.

PixMo keeps, beside each cleaned transcript, one more LLM caption that merges every
annotator's description of the image. `summarize` asks the LLM for it and validates it
like the clean stage: not empty, no number or name that no input states, and enough of
the content terms shared by the inputs (said by at least two of them; all terms when
there is one input). One stricter retry, then `SummaryInvalid`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipelines import text_checks
from pipelines.cleaning import strip_preamble, validate
from pipelines.llm import LLMClient, LLMError

PROMPT_VERSION = "summary-v1"
DEFAULT_MIN_RECALL = 0.6
SEPARATOR = "\n\n---\n\n"

PROMPT = (
    "Several people described the same image. Their descriptions follow, separated by "
    "lines of ---. Write one detailed description of the image that combines them.\n"
    "- Include every detail any of them mentions: objects, counts, colours, positions, "
    "text in the image, the background.\n"
    "- When they disagree, keep what most of them say.\n"
    "- Invent nothing: no objects, numbers or names that none of them mentions.\n"
    "- Do not mention the people or their descriptions; describe the image.\n"
    "Reply with the description only, without any preamble."
)
STRICT_PROMPT = (
    "Combine the descriptions below into one description of the image, using only "
    "their words. Keep every object, colour, number, position and piece of written text "
    "they mention. Add nothing. Reply with the description only."
)


class SummaryInvalid(ValueError):
    """The LLM's summaries failed validation twice; the message gives the reasons."""


@dataclass(frozen=True)
class SummaryResult:
    text: str
    prompt_version: str
    model_name: str
    llm_attempts: int = 1


def shared_terms(captions: list[str]) -> set[str]:
    """Content terms said by at least two captions (every term of a single caption)."""
    per_caption = [text_checks.content_terms(c) for c in captions]
    if len(per_caption) == 1:
        return per_caption[0]
    counts = Counter(term for terms in per_caption for term in terms)
    return {term for term, n in counts.items() if n >= 2}


def summarize(
    captions: list[str], *, client: LLMClient, min_recall: float = DEFAULT_MIN_RECALL
) -> SummaryResult:
    """One caption summarising `captions`; raises SummaryInvalid or LLMUnavailable."""
    captions = [c.strip() for c in captions if c and c.strip()]
    if not captions:
        raise SummaryInvalid("no captions to summarise")
    terms = shared_terms(captions)
    total_words = sum(text_checks.word_count(c) for c in captions)
    max_words = total_words + 30
    max_tokens = min(2048, 64 + 2 * max(text_checks.word_count(c) for c in captions) + total_words)
    reasons: list[str] = []
    all_reasons: list[str] = []
    for attempt in (1, 2):
        system = PROMPT if attempt == 1 else STRICT_PROMPT + _rejected(reasons)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": SEPARATOR.join(captions)},
        ]
        try:
            result = client.complete(messages, max_tokens=max_tokens)
        except LLMError as exc:
            if exc.is_configuration:
                raise
            reasons = [f"LLM error: {exc}"]
        else:
            output = strip_preamble(result.text)
            reasons = validate(
                output, captions, terms=terms, min_recall=min_recall, max_words=max_words
            )
            if not reasons:
                return SummaryResult(output, PROMPT_VERSION, result.model, attempt)
        all_reasons += [f"attempt {attempt}: {reason}" for reason in reasons]
    raise SummaryInvalid("; ".join(all_reasons))


def _rejected(reasons: list[str]) -> str:
    return "\nYour previous answer was rejected: " + "; ".join(reasons) + "."
