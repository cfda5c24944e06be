"""CapQA generation (PixMo-CapQA) over a cap campaign's accepted captions.

`capqa_run_start` records a run and enqueues one `ama.capqa_caption` task per accepted
caption (queue `llm`); `capqa_caption_process` asks the LLM for pairs about one
caption (pipelines.capqa: a topic and style drawn with a generator seeded by run and
caption, JSON validated, duplicates dropped) and stores the valid ones, adding its
counts to the run under the run's row lock. `python manage.py generate_capqa` starts a
run and follows it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotator_app.ama.answering import llm_client
from annotator_app.ama.models import CapQAPair, CapQARun
from annotator_app.ama.queueing import enqueue_capqa_caption
from annotator_app.ama.selectors import accepted_captions_for_capqa
from annotator_app.captions.models import CleanedCaption
from annotator_app.work.models import Campaign
from pipelines import capqa as capqa_stage


@dataclass(frozen=True)
class CaptionOutcome:
    kept: int
    rejected: Counter[str]
    failed: bool = False


def _run_settings() -> dict[str, object]:
    return {
        "topics": list(settings.CAPQA_TOPICS or capqa_stage.DEFAULT_TOPICS),
        "styles": list(settings.CAPQA_STYLES or capqa_stage.DEFAULT_STYLES),
        "pairs": settings.CAPQA_PAIRS_PER_CAPTION,
        "multi_turn_share": settings.CAPQA_MULTI_TURN_SHARE,
        "model": settings.LLM_MODEL,
        "prompt_version": capqa_stage.PROMPT_VERSION,
    }


def capqa_run_start(*, campaign: Campaign, enqueue: bool = True) -> tuple[CapQARun, list[int]]:
    """Record a run over the campaign's accepted captions; enqueue them unless told not to.

    Returns the run and the caption ids it covers.
    """
    caption_ids = list(accepted_captions_for_capqa(campaign=campaign).values_list("pk", flat=True))
    with transaction.atomic():
        run = CapQARun.objects.create(
            campaign=campaign, total=len(caption_ids), settings=_run_settings()
        )
        if not caption_ids:
            run.finished_at = timezone.now()
            run.save(update_fields=["finished_at"])
        elif enqueue:
            transaction.on_commit(lambda: _enqueue_all(run.pk, caption_ids))
    return run, caption_ids


def _enqueue_all(run_id: int, caption_ids: list[int]) -> None:
    for caption_id in caption_ids:
        enqueue_capqa_caption(run_id, caption_id)


def _record(run_id: int, outcome: CaptionOutcome) -> None:
    with transaction.atomic():
        run = CapQARun.objects.select_for_update().get(pk=run_id)
        run.processed += 1
        run.failed += int(outcome.failed)
        run.pairs_kept += outcome.kept
        run.pairs_rejected += sum(outcome.rejected.values())
        merged = Counter(run.rejections)
        merged.update(outcome.rejected)
        run.rejections = dict(merged)
        if run.processed >= run.total and run.finished_at is None:
            run.finished_at = timezone.now()
        run.save()


def capqa_caption_failed(*, run_id: int) -> None:
    """Count a caption whose LLM calls failed for good (the task's retries ran out)."""
    _record(run_id, CaptionOutcome(kept=0, rejected=Counter(), failed=True))


def capqa_caption_process(*, run_id: int, caption_id: int) -> CaptionOutcome:
    """Pairs from one caption; LLMUnavailable propagates (the task retries it)."""
    run = CapQARun.objects.get(pk=run_id)
    caption = CleanedCaption.objects.select_related("transcript__recording").get(pk=caption_id)
    recording = caption.transcript.recording
    conf = run.settings
    rng = random.Random(f"capqa-{run_id}-{caption_id}")
    variation = capqa_stage.pick_variation(
        rng, list(conf["topics"]), list(conf["styles"]), float(conf["multi_turn_share"])
    )
    seen = set(
        CapQAPair.objects.filter(
            campaign_id=run.campaign_id, image_id=recording.image_id
        ).values_list("question_key", flat=True)
    )
    outcome = capqa_stage.generate(
        llm_client(), caption.text, variation, pairs=int(conf["pairs"]), seen_questions=seen
    )
    rejected = Counter(r.reason for r in outcome.rejections)
    kept = 0
    for item in outcome.items:
        try:
            with transaction.atomic():
                CapQAPair.objects.create(
                    campaign_id=run.campaign_id,
                    image_id=recording.image_id,
                    run=run,
                    source_caption_id=caption.pk,
                    source_kind="caption",
                    question=item.question,
                    question_key=capqa_stage.question_key(item.question),
                    answer=item.answer,
                    multi_turn=item.multi_turn,
                    topic=variation.topic,
                    style=variation.style,
                    prompt_version=outcome.prompt_version,
                    model_name=outcome.model_name,
                )
            kept += 1
        except IntegrityError:  # a concurrent task stored the same question first
            rejected[capqa_stage.REJECT_DUPLICATE] += 1
    result = CaptionOutcome(kept=kept, rejected=rejected)
    _record(run_id, result)
    return result


def capqa_run_counts(*, run_id: int) -> dict[str, object]:
    run = CapQARun.objects.get(pk=run_id)
    return {
        "total": run.total,
        "processed": run.processed,
        "failed": run.failed,
        "pairs_kept": run.pairs_kept,
        "pairs_rejected": run.pairs_rejected,
        "rejections": dict(sorted(run.rejections.items(), key=lambda kv: -kv[1])),
    }
