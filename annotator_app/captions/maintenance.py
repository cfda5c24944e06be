"""Keeping the pipeline moving: the sweeper, reprocessing, and the status report.

The sweeper (beat task, every PIPELINE_SWEEP_SECONDS) finds work whose message was lost
or whose worker died and sends it again:

- recordings waiting (stored, transcribed) and summaries pending for longer than
  PIPELINE_STUCK_SECONDS: enqueued again, `stage_started_at` touched by compare-and-set
  so the next sweep waits another period (a long queue is not flooded with copies);
- rows in a running state (transcribing, cleaning, running) older than the stage's
  time limit plus a margin: moved back to the waiting state and enqueued, or marked
  failed once they have started PIPELINE_MAX_ATTEMPTS runs (audio that kills workers).

Reprocessing resets a row by compare-and-set, deletes what the restarted stage will
write again (transcript, cleaned caption, and the image's summary, which depends on
them) and enqueues the stage on commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.captions.pipeline import (
    STAGE_MARGIN_SECONDS,
    recording_fail,
    stage_time_limit,
    summary_fail,
    summary_trigger,
)
from annotator_app.captions.queueing import enqueue_clean, enqueue_summary, enqueue_transcribe
from annotator_app.work.models import WorkItem

STAGES = ("asr", "clean", "summary")
# Rows handled per state per sweep; the next sweep takes the rest.
SWEEP_BATCH = 500


class ReprocessError(ValueError):
    """The row cannot be reprocessed at that stage; the message says why."""


# --- sweeper ----------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: int = 0  # waiting rows whose message was presumably lost
    reset: int = 0  # running rows whose worker died, moved back and enqueued
    gave_up: int = 0  # running rows out of attempts, marked failed

    def __str__(self) -> str:
        return f"requeued {self.requeued}, reset {self.reset}, gave up {self.gave_up}"


def pipeline_sweep(*, now: datetime | None = None) -> SweepReport:
    """Re-enqueue lost and abandoned work; see the module docstring."""
    now = now or timezone.now()
    report = SweepReport()
    waiting_cutoff = now - timedelta(seconds=settings.PIPELINE_STUCK_SECONDS)
    waiting: list[tuple[type[Recording] | type[ImageSummary], str, Callable[[int], None]]] = [
        (Recording, RecordingStatus.STORED, enqueue_transcribe),
        (Recording, RecordingStatus.TRANSCRIBED, enqueue_clean),
        (ImageSummary, SummaryStatus.PENDING, enqueue_summary),
    ]
    for model, status, enqueue in waiting:
        rows = model.objects.filter(status=status, stage_started_at__lt=waiting_cutoff)
        for row_id, started in rows.values_list("id", "stage_started_at")[:SWEEP_BATCH]:
            touched = model.objects.filter(id=row_id, status=status, stage_started_at=started)
            if touched.update(stage_started_at=now):
                enqueue(row_id)
                report.requeued += 1
    running: list[tuple[type[Recording] | type[ImageSummary], str, str, Callable[[int], None]]] = [
        (Recording, RecordingStatus.TRANSCRIBING, RecordingStatus.STORED, enqueue_transcribe),
        (Recording, RecordingStatus.CLEANING, RecordingStatus.TRANSCRIBED, enqueue_clean),
        (ImageSummary, SummaryStatus.RUNNING, SummaryStatus.PENDING, enqueue_summary),
    ]
    for model, status, back_to, enqueue in running:
        cutoff = now - timedelta(seconds=stage_time_limit(status) + STAGE_MARGIN_SECONDS)
        rows = model.objects.filter(status=status, stage_started_at__lt=cutoff)
        for row_id, started, attempts in rows.values_list("id", "stage_started_at", "attempts")[
            :SWEEP_BATCH
        ]:
            if attempts >= settings.PIPELINE_MAX_ATTEMPTS:
                reason = f"gave up after {attempts} runs that never finished ({status})"
                if model is Recording:
                    recording_fail(recording_id=row_id, reason=reason)
                else:
                    summary_fail(summary_id=row_id, reason=reason)
                report.gave_up += 1
                continue
            moved = model.objects.filter(id=row_id, status=status, stage_started_at=started)
            if moved.update(status=back_to, stage_started_at=now, updated_at=now):
                enqueue(row_id)
                report.reset += 1
    return report


# --- reprocess --------------------------------------------------------------------------


def _summary_discard(*, campaign_id: int, image_id: int) -> None:
    """Drop an image's summary: its sources change, the trigger makes a new one."""
    ImageSummary.objects.filter(campaign_id=campaign_id, image_id=image_id).delete()


def recording_reprocess(*, recording_id: int, stage: str | None = None) -> str:
    """Restart a recording at `stage` (asr, clean; default: where it stopped).

    asr deletes the transcript (and its cleaned caption), clean deletes the cleaned
    caption; either drops the image's summary. Returns what was done.
    """
    if stage not in (None, "asr", "clean"):
        raise ReprocessError(f"stage must be asr or clean for a recording, got {stage!r}")
    with transaction.atomic():
        recording = Recording.objects.select_for_update().filter(id=recording_id).first()
        if recording is None:
            raise ReprocessError(f"recording {recording_id} does not exist")
        has_transcript = Transcript.objects.filter(recording_id=recording_id).exists()
        if stage is None:
            flagged = recording.status == RecordingStatus.FLAGGED
            stage = "clean" if has_transcript and not flagged else "asr"
        if stage == "clean" and not has_transcript:
            raise ReprocessError(
                f"recording {recording_id} has no transcript to clean; use --stage asr"
            )
        if stage == "asr":
            Transcript.objects.filter(recording_id=recording_id).delete()
            new_status, enqueue = RecordingStatus.STORED, enqueue_transcribe
        else:
            CleanedCaption.objects.filter(transcript__recording_id=recording_id).delete()
            new_status, enqueue = RecordingStatus.TRANSCRIBED, enqueue_clean
        _summary_discard(campaign_id=recording.campaign_id, image_id=recording.image_id)
        Recording.objects.filter(id=recording_id, status=recording.status).update(
            status=new_status,
            stage_started_at=timezone.now(),
            attempts=0,
            failure_reason="",
            updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: enqueue(recording_id))
    return f"recording {recording_id}: {recording.status} -> {new_status}, {stage} enqueued"


def summary_reprocess(*, summary_id: int) -> str:
    """Write an image's summary again (e.g. after a failure or a prompt change)."""
    with transaction.atomic():
        summary = ImageSummary.objects.select_for_update().filter(id=summary_id).first()
        if summary is None:
            raise ReprocessError(f"summary {summary_id} does not exist")
        ImageSummary.objects.filter(id=summary_id, status=summary.status).update(
            status=SummaryStatus.PENDING,
            stage_started_at=timezone.now(),
            attempts=0,
            failure_reason="",
            updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: enqueue_summary(summary_id))
    return f"summary {summary_id}: {summary.status} -> pending, summary enqueued"


def item_summary_reprocess(*, item_id: int) -> str:
    """Summarise a work item's image again, or create its summary if now complete."""
    item = WorkItem.objects.filter(id=item_id).first()
    if item is None:
        raise ReprocessError(f"item {item_id} does not exist")
    summary = ImageSummary.objects.filter(campaign_id=item.campaign_id, image_id=item.image_id)
    existing = summary.values_list("id", flat=True).first()
    if existing is not None:
        return summary_reprocess(summary_id=existing)
    with transaction.atomic():
        created = summary_trigger(item_id=item_id)
    if created is None:
        return f"item {item_id}: not every caption is cleaned yet, no summary"
    return f"item {item_id}: summary {created.id} created and enqueued"


def item_reprocess(*, item_id: int, stage: str | None = None) -> list[str]:
    """Reprocess every recording of a work item (or its summary, with stage summary)."""
    if stage == "summary":
        return [item_summary_reprocess(item_id=item_id)]
    if not WorkItem.objects.filter(id=item_id).exists():
        raise ReprocessError(f"item {item_id} does not exist")
    ids = Recording.objects.filter(assignment__item_id=item_id).values_list("id", flat=True)
    return [recording_reprocess(recording_id=rid, stage=stage) for rid in ids.order_by("id")]


def stage_requeue(*, stage: str) -> list[str]:
    """Enqueue again every row waiting for or running `stage`, however young."""
    if stage not in STAGES:
        raise ReprocessError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    done: list[str] = []
    if stage == "summary":
        ids = ImageSummary.objects.filter(
            status__in=(SummaryStatus.PENDING, SummaryStatus.RUNNING)
        ).values_list("id", flat=True)
        return [summary_reprocess(summary_id=sid) for sid in ids.order_by("id")]
    statuses = {
        "asr": (RecordingStatus.STORED, RecordingStatus.TRANSCRIBING),
        "clean": (RecordingStatus.TRANSCRIBED, RecordingStatus.CLEANING),
    }[stage]
    for rid in Recording.objects.filter(status__in=statuses).values_list("id", flat=True):
        done.append(recording_reprocess(recording_id=rid, stage=stage))
    return done


# --- status report ----------------------------------------------------------------------


@dataclass
class Stuck:
    kind: str
    id: int
    status: str
    age_seconds: float
    attempts: int


@dataclass
class Failure:
    kind: str
    id: int
    status: str
    reason: str
    updated_at: datetime


@dataclass
class PipelineOverview:
    recordings: dict[str, int] = field(default_factory=dict)
    summaries: dict[str, int] = field(default_factory=dict)
    cleaned_fallbacks: int = 0
    stuck: list[Stuck] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    flagged: list[Failure] = field(default_factory=list)


def pipeline_overview(*, limit: int = 10, now: datetime | None = None) -> PipelineOverview:
    """Counts per state, the oldest unfinished rows, the latest failures and flags."""
    now = now or timezone.now()
    overview = PipelineOverview()
    by_status = Recording.objects.values("status").annotate(n=Count("id")).order_by()
    found = {row["status"]: row["n"] for row in by_status}
    overview.recordings = {s.value: found.get(s.value, 0) for s in RecordingStatus}
    summaries_by_status = ImageSummary.objects.values("status").annotate(n=Count("id")).order_by()
    found = {row["status"]: row["n"] for row in summaries_by_status}
    overview.summaries = {s.value: found.get(s.value, 0) for s in SummaryStatus}
    overview.cleaned_fallbacks = CleanedCaption.objects.filter(used_fallback=True).count()
    unfinished = [
        s for s in RecordingStatus if s not in (RecordingStatus.DONE, RecordingStatus.FAILED)
    ]
    unfinished.remove(RecordingStatus.FLAGGED)
    oldest: list[Stuck] = [
        Stuck("recording", r.id, r.status, (now - r.stage_started_at).total_seconds(), r.attempts)
        for r in Recording.objects.filter(status__in=unfinished).order_by("stage_started_at")[
            :limit
        ]
    ]
    oldest += [
        Stuck("summary", s.id, s.status, (now - s.stage_started_at).total_seconds(), s.attempts)
        for s in ImageSummary.objects.filter(
            status__in=(SummaryStatus.PENDING, SummaryStatus.RUNNING)
        ).order_by("stage_started_at")[:limit]
    ]
    overview.stuck = sorted(oldest, key=lambda s: -s.age_seconds)[:limit]
    failed: list[Failure] = [
        Failure("recording", r.id, r.status, r.failure_reason, r.updated_at)
        for r in Recording.objects.filter(status=RecordingStatus.FAILED).order_by("-updated_at")[
            :limit
        ]
    ]
    failed += [
        Failure("summary", s.id, s.status, s.failure_reason, s.updated_at)
        for s in ImageSummary.objects.filter(status=SummaryStatus.FAILED).order_by("-updated_at")[
            :limit
        ]
    ]
    overview.failures = sorted(failed, key=lambda f: f.updated_at, reverse=True)[:limit]
    flagged = Transcript.objects.filter(recording__status=RecordingStatus.FLAGGED)
    overview.flagged = [
        Failure("recording", t.recording_id, RecordingStatus.FLAGGED, "; ".join(t.flag_reasons),
                t.created_at)
        for t in flagged.order_by("-created_at")[:limit]
    ]  # fmt: skip
    return overview
