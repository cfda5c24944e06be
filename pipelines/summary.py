"""The summary stage: one caption for an image from all of its cleaned transcripts.

PixMo keeps, beside each cleaned transcript, one more LLM caption that merges every
annotator's description of the image. With an LLM configured, `summarize` asks for it
and validates it like the clean stage (pipelines.cleaning.output_problems: no loop,
preamble, copied instructions or word salad) plus: enough of the content terms the
inputs share (said by at least two of them; all terms when there is one input), and no
number or name that no input states. One stricter retry; a second failure falls back.

The fallback, and the summary when no LLM is configured, is the best input caption by
this rule: among the inputs that pass the same output checks, the one that covers most
of the shared terms, then the one with the most content terms, then the first. A
fallback after a rejected answer is flagged with the reasons; reviewers see them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipelines import text_checks
from pipelines.cleaning import RULES_MODEL, output_problems, strip_preamble
from pipelines.llm import LLMClient, LLMError

PROMPT_VERSION = "summary-v2"
DEFAULT_MIN_RECALL = 0.8
SEPARATOR = "\n\n---\n\n"

PROMPT = (
    "Several people described the same image. Their descriptions follow, separated by "
    "lines of ---. Write one detailed description of the image that combines them.\n"
    "- Include every detail any of them mentions: objects, counts, colours, positions, "
    "text in the image, the background.\n"
    "- When they disagree, keep what most of them say.\n"
    "- Invent nothing: no objects, numbers or names that none of them mentions.\n"
    "- Do not mention the people or their descriptions; describe the image once.\n"
    "Reply with the description only, without any preamble."
)
STRICT_PROMPT = (
    "Combine the descriptions below into one description of the image, using only "
    "their words. Keep every object, colour, number, position and piece of written text "
    "they mention. Add nothing and say each thing once. Reply with the description only."
)


class SummaryInvalid(ValueError):
    """There is nothing to summarise; the message says why."""


@dataclass(frozen=True)
class SummaryResult:
    text: str
    prompt_version: str
    model_name: str
    llm_attempts: int = 1
    used_fallback: bool = False
    flagged: bool = False
    flag_reasons: list[str] = field(default_factory=list)
    source_index: int | None = None  # the input caption used as the summary, if one was


def shared_terms(captions: list[str]) -> set[str]:
    """Content terms said by at least two captions (every term of a single caption)."""
    per_caption = [text_checks.content_terms(c) for c in captions]
    if len(per_caption) == 1:
        return per_caption[0]
    counts = Counter(term for terms in per_caption for term in terms)
    return {term for term, n in counts.items() if n >= 2}


def best_caption(captions: list[str]) -> int:
    """Index of the input caption that best stands for all of them (see the module doc)."""
    terms = shared_terms(captions)
    sound = [i for i, c in enumerate(captions) if not output_problems(c, [c], instructions=[])]
    candidates = sound or list(range(len(captions)))

    def score(i: int) -> tuple[float, int, int]:
        recall = text_checks.recall(terms, captions[i])[0]
        return (recall, len(text_checks.content_terms(captions[i])), -i)

    return max(candidates, key=score)


def validate_summary(
    output: str, captions: list[str], *, min_recall: float, finish_reason: str = ""
) -> list[str]:
    """Reasons why `output` is not an acceptable summary of `captions` (empty: fine)."""
    reasons = output_problems(
        output, captions, instructions=[PROMPT, STRICT_PROMPT], finish_reason=finish_reason
    )
    if reasons == ["empty output"]:
        return reasons
    score, missing = text_checks.recall(shared_terms(captions), output)
    if score < min_recall:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        reasons.append(f"lost shared content words: recall {score:.2f} < {min_recall:.2f} "
                       f"(missing: {shown})")  # fmt: skip
    invented = text_checks.novel_numbers(output, captions)
    if invented:
        reasons.append(f"numbers no input states: {', '.join(invented[:8])}")
    named = text_checks.novel_names(output, captions)
    if named:
        reasons.append(f"names no input states: {', '.join(named[:8])}")
    words = text_checks.word_count(output)
    limit = sum(text_checks.word_count(c) for c in captions) + 30
    if words > limit:
        reasons.append(f"too long: {words} words, at most {limit}")
    return reasons


def summarize(
    captions: list[str], *, client: LLMClient | None, min_recall: float = DEFAULT_MIN_RECALL
) -> SummaryResult:
    """One caption for `captions`; raises SummaryInvalid (none) or LLMUnavailable."""
    captions = [c.strip() for c in captions if c and c.strip()]
    if not captions:
        raise SummaryInvalid("no captions to summarise")
    if client is None:
        best = best_caption(captions)
        return SummaryResult(captions[best], PROMPT_VERSION, RULES_MODEL, 0, source_index=best)
    total_words = sum(text_checks.word_count(c) for c in captions)
    max_tokens = min(2048, 64 + 2 * total_words)
    all_reasons: list[str] = []
    model_name = client.model
    for attempt in (1, 2):
        messages = [
            {"role": "system", "content": PROMPT if attempt == 1 else STRICT_PROMPT},
            {"role": "user", "content": SEPARATOR.join(captions)},
        ]
        try:
            result = client.complete(messages, max_tokens=max_tokens)
        except LLMError as exc:
            if exc.is_configuration:
                raise
            reasons = [f"LLM error: {exc}"]
        else:
            model_name = result.model
            output = strip_preamble(result.text)
            reasons = validate_summary(
                output, captions, min_recall=min_recall, finish_reason=result.finish_reason
            )
            if not reasons:
                return SummaryResult(output, PROMPT_VERSION, model_name, attempt)
        all_reasons += [f"attempt {attempt}: {reason}" for reason in reasons]
    best = best_caption(captions)
    return SummaryResult(
        text=captions[best],
        prompt_version=PROMPT_VERSION,
        model_name=model_name,
        llm_attempts=2,
        used_fallback=True,
        flagged=True,
        flag_reasons=[
            f"LLM summary rejected, caption {best + 1} of {len(captions)} is kept",
            *all_reasons,
        ],
        source_index=best,
    )
