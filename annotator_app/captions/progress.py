"""Reads for the capture page: the annotator's progress in a campaign, and where a
submitted recording is in the pipeline with an estimate of the wait.

Estimates come from this installation's own recent history (the median time the last
recordings spent in each stage, queue wait included), so they follow the machine: a
loaded CPU box and a GPU server give different figures without any setting. With no
history yet, a stage's estimate is unknown (None) and the page says so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.work.models import Campaign
from annotator_app.work.selectors import annotator_progress, campaign_progress

# Recent rows whose stage times make the typical figure, and how long it is cached.
HISTORY_ROWS = 20
TYPICAL_CACHE_SECONDS = 30

STAGES = ("uploaded", "transcribing", "cleaning", "summary")
STAGE_LABELS = {
    "uploaded": "Uploaded",
    "transcribing": "Transcribing",
    "cleaning": "Cleaning",
    "summary": "Summary",
}


@dataclass(frozen=True)
class CaptureProgress:
    described: int  # this annotator's submissions in the campaign, whatever their verdict
    accepted: int
    left: int  # descriptions the campaign still wants (its open slots, any annotator's)


def capture_progress(*, user: Any, campaign: Campaign) -> CaptureProgress:
    """How far this annotator is in `campaign`, for the capture page's header.

    Read from the work engine's counter rows (annotator_app/work/counters.py), so the
    cost does not grow with the campaign or the annotator's history."""
    own = annotator_progress(campaign=campaign, annotator=user)
    described = own[0].items if own else 0
    accepted = own[0].accepted if own else 0
    left = campaign_progress(campaign=campaign).remaining
    return CaptureProgress(described=described, accepted=accepted, left=left)


@dataclass(frozen=True)
class StageState:
    name: str  # one of STAGES
    label: str
    state: str  # done | current | waiting | failed | flagged


@dataclass(frozen=True)
class RecordingProgress:
    stages: list[StageState]
    current: str | None  # the stage running now, None when nothing more will run
    estimate_seconds: int | None  # the wait left for the current stage, when known
    note: str  # the estimate in words


def _median_seconds(rows: list[Any]) -> float | None:
    seconds = [r.total_seconds() for r in rows if r is not None]
    return statistics.median(seconds) if seconds else None


def typical_stage_seconds() -> dict[str, float | None]:
    """Median seconds of the last recordings' transcribing, cleaning and summary stages."""
    cached = cache.get("captions:typical-stage-seconds")
    if cached is not None:
        return dict(cached)
    asr = (
        Transcript.objects.annotate(
            took=ExpressionWrapper(
                F("created_at") - F("recording__created_at"), output_field=DurationField()
            )
        )
        .order_by("-id")
        .values_list("took", flat=True)[:HISTORY_ROWS]
    )
    clean = (
        CleanedCaption.objects.annotate(
            took=ExpressionWrapper(
                F("created_at") - F("transcript__created_at"), output_field=DurationField()
            )
        )
        .order_by("-id")
        .values_list("took", flat=True)[:HISTORY_ROWS]
    )
    summary = (
        ImageSummary.objects.filter(status=SummaryStatus.DONE)
        .annotate(
            took=ExpressionWrapper(F("updated_at") - F("created_at"), output_field=DurationField())
        )
        .order_by("-id")
        .values_list("took", flat=True)[:HISTORY_ROWS]
    )
    typical = {
        "transcribing": _median_seconds(list(asr)),
        "cleaning": _median_seconds(list(clean)),
        "summary": _median_seconds(list(summary)),
    }
    cache.set("captions:typical-stage-seconds", typical, TYPICAL_CACHE_SECONDS)
    return typical


def _summary_state(recording: Recording) -> str:
    summary = (
        ImageSummary.objects.filter(campaign_id=recording.campaign_id, image_id=recording.image_id)
        .values_list("status", flat=True)
        .first()
    )
    if summary is None:
        return "waiting"
    finished = {str(SummaryStatus.DONE): "done", str(SummaryStatus.FAILED): "failed"}
    return finished.get(str(summary), "current")


def _states(recording: Recording) -> dict[str, str]:
    status = recording.status
    has_transcript = hasattr(recording, "transcript")
    states = {"uploaded": "done", "transcribing": "done", "cleaning": "done", "summary": "waiting"}
    if status in (RecordingStatus.STORED, RecordingStatus.TRANSCRIBING):
        states.update(transcribing="current", cleaning="waiting")
    elif status in (RecordingStatus.TRANSCRIBED, RecordingStatus.CLEANING):
        states["cleaning"] = "current"
    elif status == RecordingStatus.FLAGGED:
        states.update(transcribing="flagged", cleaning="waiting")
    elif status == RecordingStatus.FAILED:
        failed_at = "cleaning" if has_transcript else "transcribing"
        states[failed_at] = "failed"
        if failed_at == "transcribing":
            states["cleaning"] = "waiting"
    else:  # done: the summary follows once every description of the image is in
        states["summary"] = _summary_state(recording)
    return states


def _estimate(
    stage: str | None, since: datetime, typical: dict[str, float | None]
) -> tuple[int | None, str]:
    if stage is None:
        return None, ""
    usual = typical.get(stage)
    if stage == "summary":
        return (round(usual) if usual is not None else None), (
            "The image's summary is being written"
            + (f"; it usually takes about {round(usual)} s." if usual is not None else ".")
        )
    if usual is None:
        return None, f"{STAGE_LABELS[stage]}: no estimate yet (no earlier recordings here)."
    elapsed = (timezone.now() - since).total_seconds()
    left = round(usual - elapsed)
    if left <= 0:
        return 0, (
            f"{STAGE_LABELS[stage]} is taking longer than usual (usually about "
            f"{round(usual)} s); the server may be busy."
        )
    return left, f"{STAGE_LABELS[stage]}: about {left} s left (usually {round(usual)} s)."


def recording_progress(*, recording: Recording) -> RecordingProgress:
    """The pipeline stages of one recording, which one runs, and the expected wait."""
    states = _states(recording)
    current = next((name for name in STAGES if states[name] == "current"), None)
    estimate, note = None, ""
    if current is not None:
        estimate, note = _estimate(current, recording.stage_started_at, typical_stage_seconds())
    if current is None and states["summary"] == "waiting":
        note = "The image's summary follows once every description of this image is in."
    stages = [StageState(name, STAGE_LABELS[name], states[name]) for name in STAGES]
    return RecordingProgress(stages, current, estimate, note)
