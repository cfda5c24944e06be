"""Celery tasks of the speech-to-caption pipeline: ids in, one service call each.

The top layer: tasks call down into pipeline.py and maintenance.py; those enqueue the
next stage by the task names of queueing.py and never import this module.

ASR runs on queue `asr`, cleaning and summaries on queue `llm`, the sweeper on `default`
(CELERY_TASK_ROUTES in settings).
Late acks with reject-on-worker-lost (the app's defaults) mean a killed worker's message
is delivered again; transient errors (LLM endpoint down, database connection lost) retry
with exponential backoff and jitter; when retries run out, or on any other error,
`on_failure` marks the row failed with the reason, ready for `manage.py reprocess`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from annotator_app.captions import live, maintenance, pipeline, queueing
from pipelines.asr import Transcriber
from pipelines.live_asr import SpeechModel, load_model

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (
    pipeline.StageUnavailable,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)

_transcriber: Transcriber | None = None
_transcriber_lock = threading.Lock()


def transcriber() -> Transcriber:
    """The process's faster-whisper model, loaded on first use from the WHISPER_* settings."""
    global _transcriber
    with _transcriber_lock:
        if _transcriber is None:
            _transcriber = pipeline.transcriber_from_settings()
        return _transcriber


def _redelivered(task: Task) -> bool:
    """True for a message delivered again (its worker died) or a retry of this task."""
    info = task.request.delivery_info or {}
    return bool(info.get("redelivered")) or bool(task.request.retries)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RecordingTask(Task):
    """A stage of one recording: a final failure marks the recording failed."""

    stage = ""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        recording_id = kwargs.get("recording_id", args[0] if args else None)
        if recording_id is not None:
            pipeline.recording_fail(
                recording_id=int(recording_id), reason=f"{self.stage}: {_reason(exc)}"
            )


class SummaryTask(Task):
    """The summary stage: a final failure marks the summary failed."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        summary_id = kwargs.get("summary_id", args[0] if args else None)
        if summary_id is not None:
            pipeline.summary_fail(summary_id=int(summary_id), reason=f"summary: {_reason(exc)}")


_RELIABLE: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_jitter": True,
    "retry_backoff_max": settings.PIPELINE_RETRY_BACKOFF_MAX,
    "max_retries": settings.PIPELINE_MAX_RETRIES,
}


@shared_task(
    name=queueing.TRANSCRIBE,
    base=RecordingTask,
    stage="asr",
    soft_time_limit=max(settings.PIPELINE_ASR_TIME_LIMIT - 30, 1),
    time_limit=settings.PIPELINE_ASR_TIME_LIMIT,
    **_RELIABLE,
)
def transcribe_recording(self: Task, recording_id: int) -> str:
    return pipeline.recording_transcribe(
        recording_id=recording_id, transcriber=transcriber(), redelivered=_redelivered(self)
    )


@shared_task(
    name=queueing.CLEAN,
    base=RecordingTask,
    stage="clean",
    soft_time_limit=max(settings.PIPELINE_LLM_TIME_LIMIT - 30, 1),
    time_limit=settings.PIPELINE_LLM_TIME_LIMIT,
    **_RELIABLE,
)
def clean_recording(self: Task, recording_id: int) -> str:
    return pipeline.recording_clean(
        recording_id=recording_id,
        client=pipeline.caption_llm_client(),
        redelivered=_redelivered(self),
    )


@shared_task(
    name=queueing.SUMMARIZE,
    base=SummaryTask,
    soft_time_limit=max(settings.PIPELINE_LLM_TIME_LIMIT - 30, 1),
    time_limit=settings.PIPELINE_LLM_TIME_LIMIT,
    **_RELIABLE,
)
def summarize_image(self: Task, summary_id: int) -> str:
    return pipeline.summary_run(
        summary_id=summary_id,
        client=pipeline.caption_llm_client(),
        redelivered=_redelivered(self),
    )


@shared_task(name=queueing.SWEEP, acks_late=True)
def pipeline_sweep() -> str:
    """Beat task: re-enqueue lost or abandoned work (see maintenance.pipeline_sweep)."""
    report = maintenance.pipeline_sweep()
    logger.info("pipeline sweep: %s", report)
    return str(report)


# --- P12 live guidance (queue `live`, its own worker) ---------------------------------------

_live_model: SpeechModel | None = None


def live_model() -> SpeechModel:
    """The live worker's faster-whisper model (LIVE_WHISPER_*), loaded on first use."""
    global _live_model
    with _transcriber_lock:
        if _live_model is None:
            _live_model = load_model(
                settings.LIVE_WHISPER_MODEL,
                device=settings.WHISPER_DEVICE,
                compute_type=settings.WHISPER_COMPUTE_TYPE,
                cpu_threads=settings.LIVE_WHISPER_THREADS,
            )
        return _live_model


# Early acks and no retries: a lost step is replaced by the next chunk's, and stale live
# work must never pile up behind a restarted worker (the message also expires).
@shared_task(name=queueing.LIVE_STEP, acks_late=False, ignore_result=True, time_limit=120)
def live_step(assignment_id: int, take: str) -> str:
    return live.live_run_step(assignment_id=assignment_id, take=take, model=live_model())
