"""The speech-to-caption pipeline's stage services: ASR, clean, summary.

Every stage is idempotent and moves state by compare-and-set:

    recording  stored -> transcribing -> transcribed -> cleaning -> done
                             +-> flagged (ASR output looks hallucinated)   (any) -> failed
    summary    pending -> running -> done | failed

A stage first *claims* its row (`filter(status=WAITING).update(status=RUNNING)`, exactly
one caller wins), works outside any transaction, then *completes* while holding
SELECT FOR UPDATE on the row, writing its output with get_or_create on a one-to-one key:
a second run (a redelivered message, the sweeper's re-enqueue) can never duplicate it.
A run may take over a row left in a running state when its message was redelivered
(the worker died) or when the row is older than the stage's time limit.

The summary is triggered by database state: the clean stage, in the transaction that
marks a recording done, locks the image's WorkItem row and counts the cleaned captions
that count; the caller that sees the campaign's overlap reached creates the unique
ImageSummary row and enqueues its task on commit. Imports run one way: tasks.py calls
these services, which enqueue the next stage by task name through queueing.py and never
import tasks.py; the sweeper, reprocess and status report are in maintenance.py.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.captions.queueing import enqueue_clean, enqueue_summary, enqueue_transcribe
from annotator_app.work.models import AssignmentStatus, Campaign, WorkItem
from pipelines.asr import AsrResult, Transcriber, uncertain_words
from pipelines.cleaning import CleanResult, clean_transcript
from pipelines.llm import LLMClient, LLMError, LLMUnavailable
from pipelines.summary import SummaryInvalid, summarize

logger = logging.getLogger(__name__)

# Extra seconds past a stage's time limit before its row counts as abandoned.
STAGE_MARGIN_SECONDS = 60
# Recording states a permanent error may end (done and flagged rows keep their output).
ACTIVE_STATUSES = (
    RecordingStatus.STORED,
    RecordingStatus.TRANSCRIBING,
    RecordingStatus.TRANSCRIBED,
    RecordingStatus.CLEANING,
)
# Assignments whose recordings count towards an image's overlap.
COUNTING_ASSIGNMENTS = (AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)
REASON_MAX_CHARS = 2000


class StageError(ValueError):
    """A permanent error of one stage: the row is marked failed with this message."""


class StageUnavailable(RuntimeError):
    """A transient error of one stage (the LLM endpoint is down): the task retries it."""


# --- entry points and enqueueing --------------------------------------------------------


def pipeline_start(recording_id: int) -> None:
    """Enqueue the ASR stage of a stored recording (the upload calls this on commit)."""
    enqueue_transcribe(recording_id)


def llm_client() -> LLMClient:
    """The OpenAI-compatible client of the configured LLM endpoint, from settings."""
    return LLMClient.from_settings(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=settings.LLM_MODEL,
        timeout=float(settings.LLM_TIMEOUT_SECONDS),
        max_retries=settings.LLM_MAX_RETRIES,
    )


def caption_uses_llm() -> bool:
    """CAPTION_LLM: on, off, or auto (on unless LLM_MODEL is a bundled small model)."""
    mode = settings.CAPTION_LLM
    return mode == "on" or (mode == "auto" and settings.LLM_MODEL not in settings.LOCAL_WEAK_LLMS)


def caption_llm_client() -> LLMClient | None:
    """The client the clean and summary stages use; None when they are left to the rules
    (the default with the bundled small models, which measured no better)."""
    return llm_client() if caption_uses_llm() else None


def transcriber_from_settings(*, batch_size: int | None = None) -> Transcriber:
    """A faster-whisper stage built from the WHISPER_* settings (loads the model)."""
    return Transcriber(
        settings.WHISPER_MODEL,
        device=settings.WHISPER_DEVICE,
        compute_type=settings.WHISPER_COMPUTE_TYPE,
        batch_size=settings.WHISPER_BATCH_SIZE if batch_size is None else batch_size,
        language=settings.WHISPER_LANGUAGE,
        beam_size=settings.WHISPER_BEAM_SIZE,
        cpu_threads=settings.WHISPER_CPU_THREADS,
    )


def stage_time_limit(status: str) -> int:
    """The task time limit of the stage that runs in `status` (a running state)."""
    if status == RecordingStatus.TRANSCRIBING:
        return int(settings.PIPELINE_ASR_TIME_LIMIT)
    return int(settings.PIPELINE_LLM_TIME_LIMIT)


# --- claiming ---------------------------------------------------------------------------


def _claim(
    model: type[Recording] | type[ImageSummary],
    row_id: int,
    *,
    waiting: str,
    running: str,
    redelivered: bool,
) -> bool:
    """Move a row from `waiting` to `running` by compare-and-set; True when this caller won.

    A row already `running` is taken over only by a redelivered message or once it is
    older than the stage's time limit (its worker is gone); the takeover is itself a
    compare-and-set on `stage_started_at`, so two redeliveries cannot both win.
    """
    now = timezone.now()
    claimed = model.objects.filter(id=row_id, status=waiting).update(
        status=running,
        stage_started_at=now,
        attempts=F("attempts") + 1,
        failure_reason="",
        updated_at=now,
    )
    if claimed:
        return True
    started = (
        model.objects.filter(id=row_id, status=running)
        .values_list("stage_started_at", flat=True)
        .first()
    )
    if started is None:
        return False
    abandoned = started < now - timedelta(seconds=stage_time_limit(running) + STAGE_MARGIN_SECONDS)
    if not (redelivered or abandoned):
        return False
    taken = model.objects.filter(id=row_id, status=running, stage_started_at=started).update(
        stage_started_at=now, attempts=F("attempts") + 1
    )
    if taken:
        logger.info(
            "%s %s: took over a %s run started at %s", model.__name__, row_id, running, started
        )
    return taken == 1


def _release(model: type[models.Model], row_id: int, *, running: str, waiting: str) -> None:
    """Hand a claimed row back (before a transient error's retry)."""
    model._default_manager.filter(id=row_id, status=running).update(
        status=waiting, updated_at=timezone.now()
    )


def recording_fail(*, recording_id: int, reason: str) -> bool:
    """Mark a recording failed with its reason, unless it already finished; True if marked."""
    changed = Recording.objects.filter(id=recording_id, status__in=ACTIVE_STATUSES).update(
        status=RecordingStatus.FAILED,
        failure_reason=reason[:REASON_MAX_CHARS],
        updated_at=timezone.now(),
    )
    if changed:
        logger.warning("recording %s failed: %s", recording_id, reason)
    return changed == 1


def summary_fail(*, summary_id: int, reason: str) -> bool:
    """Mark a summary failed with its reason, unless it is done; True if marked."""
    changed = ImageSummary.objects.filter(
        id=summary_id, status__in=(SummaryStatus.PENDING, SummaryStatus.RUNNING)
    ).update(
        status=SummaryStatus.FAILED,
        failure_reason=reason[:REASON_MAX_CHARS],
        updated_at=timezone.now(),
    )
    if changed:
        logger.warning("summary %s failed: %s", summary_id, reason)
    return changed == 1


# --- ASR --------------------------------------------------------------------------------


@contextmanager
def _local_audio(storage_key: str) -> Iterator[str]:
    """A local path to the recording's audio: the file itself, or a temporary copy (S3)."""
    try:
        path = default_storage.path(storage_key)
    except NotImplementedError:
        path = ""
    if path:
        if not Path(path).is_file():
            raise StageError(f"audio file missing from storage: {storage_key}")
        yield path
        return
    if not default_storage.exists(storage_key):
        raise StageError(f"audio file missing from storage: {storage_key}")
    with (
        default_storage.open(storage_key, "rb") as src,
        tempfile.NamedTemporaryFile(suffix=Path(storage_key).suffix) as tmp,
    ):
        shutil.copyfileobj(src, tmp)
        tmp.flush()
        yield tmp.name


def recording_transcribe(
    *, recording_id: int, transcriber: Transcriber, redelivered: bool = False
) -> str:
    """Run the ASR stage of one recording; returns what happened, for the task's log."""
    if not _claim(
        Recording,
        recording_id,
        waiting=RecordingStatus.STORED,
        running=RecordingStatus.TRANSCRIBING,
        redelivered=redelivered,
    ):
        return f"recording {recording_id}: not waiting for ASR, skipped"
    storage_key = Recording.objects.values_list("storage_key", flat=True).get(id=recording_id)
    try:
        with _local_audio(storage_key) as path:
            result = transcriber.transcribe(path)
    except StageError as exc:
        recording_fail(recording_id=recording_id, reason=f"asr: {exc}")
        return f"recording {recording_id}: failed ({exc})"
    except Exception as exc:
        if _is_decode_error(exc):
            recording_fail(recording_id=recording_id, reason=f"asr: cannot decode audio: {exc}")
            return f"recording {recording_id}: failed (cannot decode audio)"
        _release(
            Recording,
            recording_id,
            running=RecordingStatus.TRANSCRIBING,
            waiting=RecordingStatus.STORED,
        )
        raise
    return recording_transcribe_complete(recording_id=recording_id, result=result)


def _is_decode_error(exc: Exception) -> bool:
    import av

    return isinstance(exc, av.FFmpegError)


def recording_transcribe_complete(*, recording_id: int, result: AsrResult) -> str:
    """Store the transcript once and move transcribing -> transcribed (or flagged)."""
    with transaction.atomic():
        recording = Recording.objects.select_for_update().get(id=recording_id)
        if recording.status != RecordingStatus.TRANSCRIBING:
            return f"recording {recording_id}: already {recording.status}, result dropped"
        transcript, _ = Transcript.objects.get_or_create(
            recording=recording,
            defaults={
                "text": result.text,
                "language": result.language,
                "segments": [vars(s) for s in result.segments],
                "words": [vars(w) for w in result.words],
                "model_name": result.model_name,
                "settings": result.settings,
                "flagged": result.flagged,
                "flag_reasons": list(result.flags),
            },
        )
        new_status = RecordingStatus.FLAGGED if transcript.flagged else RecordingStatus.TRANSCRIBED
        Recording.objects.filter(id=recording_id, status=RecordingStatus.TRANSCRIBING).update(
            status=new_status,
            stage_started_at=timezone.now(),
            attempts=0,
            failure_reason="",
            updated_at=timezone.now(),
        )
        if new_status == RecordingStatus.TRANSCRIBED:
            transaction.on_commit(lambda: enqueue_clean(recording_id))
    return f"recording {recording_id}: {new_status}"


# --- clean ------------------------------------------------------------------------------


def recording_clean(
    *, recording_id: int, client: LLMClient | None, redelivered: bool = False
) -> str:
    """Run the clean stage of one recording; raises StageUnavailable for a retry."""
    if not _claim(
        Recording,
        recording_id,
        waiting=RecordingStatus.TRANSCRIBED,
        running=RecordingStatus.CLEANING,
        redelivered=redelivered,
    ):
        return f"recording {recording_id}: not waiting for cleaning, skipped"
    transcript = Transcript.objects.filter(recording_id=recording_id).only("text", "words").first()
    if transcript is None:
        recording_fail(recording_id=recording_id, reason="clean: the transcript is missing")
        return f"recording {recording_id}: failed (no transcript)"
    unsure = uncertain_words(transcript.words, below=settings.ASR_UNCERTAIN_BELOW)
    try:
        result = clean_transcript(
            transcript.text,
            client=client,
            min_recall=settings.CLEAN_MIN_RECALL,
            uncertain=[str(w["word"]).strip(" .,!?;:\"'") for w in unsure],
        )
    except LLMUnavailable as exc:
        _release(
            Recording,
            recording_id,
            running=RecordingStatus.CLEANING,
            waiting=RecordingStatus.TRANSCRIBED,
        )
        raise StageUnavailable(f"clean: {exc}") from exc
    except LLMError as exc:
        recording_fail(recording_id=recording_id, reason=f"clean: {exc}")
        return f"recording {recording_id}: failed ({exc})"
    return recording_clean_complete(recording_id=recording_id, result=result)


def recording_clean_complete(*, recording_id: int, result: CleanResult) -> str:
    """Store the cleaned caption once, move cleaning -> done, and maybe trigger the summary."""
    with transaction.atomic():
        recording = (
            Recording.objects.select_for_update(of=("self",))
            .select_related("transcript", "assignment")
            .get(id=recording_id)
        )
        if recording.status != RecordingStatus.CLEANING:
            return f"recording {recording_id}: already {recording.status}, result dropped"
        CleanedCaption.objects.get_or_create(
            transcript=recording.transcript,
            defaults={
                "rule_text": result.rule_text,
                "text": result.text,
                "prompt_version": result.prompt_version,
                "model_name": result.model_name,
                "llm_attempts": result.llm_attempts,
                "used_fallback": result.used_fallback,
                "flagged": result.flagged,
                "flag_reasons": list(result.flag_reasons),
            },
        )
        Recording.objects.filter(id=recording_id, status=RecordingStatus.CLEANING).update(
            status=RecordingStatus.DONE,
            stage_started_at=timezone.now(),
            failure_reason="",
            updated_at=timezone.now(),
        )
        summary = summary_trigger(item_id=recording.assignment.item_id)
    suffix = f", summary {summary.id} triggered" if summary else ""
    return f"recording {recording_id}: done{suffix}"


# --- summary ----------------------------------------------------------------------------


def counted_captions(*, campaign_id: int, image_id: int) -> QuerySet[CleanedCaption]:
    """Cleaned captions of an image that count: done recordings of live assignments."""
    return CleanedCaption.objects.filter(
        transcript__recording__campaign_id=campaign_id,
        transcript__recording__image_id=image_id,
        transcript__recording__status=RecordingStatus.DONE,
        transcript__recording__assignment__status__in=COUNTING_ASSIGNMENTS,
    ).order_by("id")


def summary_trigger(*, item_id: int) -> ImageSummary | None:
    """Create the image's summary row when its overlap is complete; None if not (yet).

    Call inside the transaction that made a recording done: the WorkItem row lock
    serialises concurrent completions of one image, so the last of them sees every
    other's commit, and the unique ImageSummary row makes creation happen once.
    """
    item = WorkItem.objects.select_for_update().get(id=item_id)
    overlap = Campaign.objects.values_list("overlap", flat=True).get(id=item.campaign_id)
    done = counted_captions(campaign_id=item.campaign_id, image_id=item.image_id).count()
    if done < overlap:
        return None
    summary, created = ImageSummary.objects.get_or_create(
        campaign_id=item.campaign_id, image_id=item.image_id
    )
    if not created:
        return None
    transaction.on_commit(lambda: enqueue_summary(summary.id))
    logger.info("summary %s triggered: %s of %s captions done", summary.id, done, overlap)
    return summary


def summary_run(*, summary_id: int, client: LLMClient | None, redelivered: bool = False) -> str:
    """Write the image's summary caption from its counted cleaned captions."""
    if not _claim(
        ImageSummary,
        summary_id,
        waiting=SummaryStatus.PENDING,
        running=SummaryStatus.RUNNING,
        redelivered=redelivered,
    ):
        return f"summary {summary_id}: not pending, skipped"
    summary = ImageSummary.objects.get(id=summary_id)
    captions = list(counted_captions(campaign_id=summary.campaign_id, image_id=summary.image_id))
    if not captions:
        summary_fail(summary_id=summary_id, reason="summary: no cleaned captions to summarise")
        return f"summary {summary_id}: failed (no captions)"
    try:
        result = summarize(
            [c.text for c in captions], client=client, min_recall=settings.SUMMARY_MIN_RECALL
        )
    except LLMUnavailable as exc:
        _release(
            ImageSummary, summary_id, running=SummaryStatus.RUNNING, waiting=SummaryStatus.PENDING
        )
        raise StageUnavailable(f"summary: {exc}") from exc
    except (SummaryInvalid, LLMError) as exc:
        summary_fail(summary_id=summary_id, reason=f"summary: {exc}")
        return f"summary {summary_id}: failed ({exc})"
    with transaction.atomic():
        locked = ImageSummary.objects.select_for_update().filter(id=summary_id).first()
        if locked is None or locked.status != SummaryStatus.RUNNING:
            return f"summary {summary_id}: no longer running, result dropped"
        fields = {
            "text": result.text,
            "prompt_version": result.prompt_version,
            "model_name": result.model_name,
            "llm_attempts": result.llm_attempts,
            "used_fallback": result.used_fallback,
            "flagged": result.flagged,
            "flag_reasons": list(result.flag_reasons),
            "source_caption": None
            if result.source_index is None
            else captions[result.source_index],
            "status": SummaryStatus.DONE,
            "failure_reason": "",
        }
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*fields, "updated_at"])
        locked.sources.set(captions)
    return f"summary {summary_id}: done from {len(captions)} captions"
