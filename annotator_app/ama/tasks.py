"""Celery entry points of the AMA loop and CapQA: ids in, a service call, nothing else."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from annotator_app.ama import answering, capqa
from annotator_app.ama.queueing import ANSWER, CAPQA_CAPTION, SWEEP
from pipelines.llm import LLMError, LLMUnavailable


@shared_task(
    name=ANSWER,
    acks_late=True,
    time_limit=settings.AMA_TIME_LIMIT,
    soft_time_limit=max(settings.AMA_TIME_LIMIT - 30, 10),
)
def answer(round_id: int) -> str:
    return answering.round_answer(round_id)


@shared_task(
    name=CAPQA_CAPTION,
    bind=True,
    acks_late=True,
    max_retries=settings.PIPELINE_MAX_RETRIES,
    time_limit=settings.PIPELINE_LLM_TIME_LIMIT,
    soft_time_limit=max(settings.PIPELINE_LLM_TIME_LIMIT - 30, 10),
)
def capqa_caption(self: Any, run_id: int, caption_id: int) -> int:
    try:
        return capqa.capqa_caption_process(run_id=run_id, caption_id=caption_id).kept
    except LLMError:  # permanent: counted as failed, the run goes on
        capqa.capqa_caption_failed(run_id=run_id)
        return 0
    except LLMUnavailable as exc:
        if self.request.retries >= self.max_retries:
            capqa.capqa_caption_failed(run_id=run_id)
            return 0
        countdown = min(settings.PIPELINE_RETRY_BACKOFF_MAX, 2 ** (self.request.retries + 2))
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name=SWEEP)
def sweep() -> dict[str, int]:
    return answering.rounds_sweep()
