"""The capture page's progress line and a recording's stages with their estimate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from annotator_app.captions.models import ImageSummary, Recording, Transcript
from annotator_app.captions.progress import (
    CaptureProgress,
    capture_progress,
    recording_progress,
)
from annotator_app.work.services import assignment_skip
from tests.captions.capture_helpers import cap_campaign, good_audio, lease, upload
from tests.captions.test_review_pages import _transcribe_and_clean

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


def _states(recording: Recording) -> dict[str, str]:
    recording.refresh_from_db()
    return {s.name: s.state for s in recording_progress(recording=recording).stages}


def test_progress_counts_ones_descriptions_and_what_is_left(
    cast, api_as, capture_media: Path
) -> None:
    campaign = cap_campaign(n_images=3)
    first = lease(cast.owner)
    shown = capture_progress(user=cast.owner, campaign=campaign)
    assert shown == CaptureProgress(described=0, accepted=0, left=2)
    assert upload(api_as(cast.owner), first.pk, good_audio()).status_code == 201
    second = lease(cast.owner)
    assignment_skip(assignment=second, reason="blurred")
    lease(cast.owner)
    shown = capture_progress(user=cast.owner, campaign=campaign)
    # Left is what the campaign still wants: the image the owner skipped (overlap 1),
    # read from the counters like the dashboard.
    assert (shown.described, shown.accepted, shown.left) == (1, 0, 1)
    other = capture_progress(user=cast.other, campaign=campaign)
    assert other.described == 0 and other.left == 1


def test_stages_move_with_the_pipeline_and_the_estimate_follows_history(
    cast, api_as, capture_media: Path, settings, monkeypatch
) -> None:
    from annotator_app.captions import pipeline

    monkeypatch.setattr(pipeline, "enqueue_summary", lambda summary_id: None)
    settings.CAPTION_LLM = "off"
    cap_campaign(n_images=2)
    first = lease(cast.owner)
    assert upload(api_as(cast.owner), first.pk, good_audio()).status_code == 201
    recording = Recording.objects.get(assignment=first)

    progress = recording_progress(recording=recording)
    assert _states(recording) == {
        "uploaded": "done",
        "transcribing": "current",
        "cleaning": "waiting",
        "summary": "waiting",
    }
    assert progress.current == "transcribing" and progress.estimate_seconds is None
    assert "no estimate yet" in progress.note

    _transcribe_and_clean(recording, [("A", 0.9), ("red", 0.9), ("wall.", 0.9)])
    states = _states(recording)
    assert states["transcribing"] == states["cleaning"] == "done"
    # Overlap 1: the summary row exists once the caption is clean; it runs (not enqueued here).
    assert ImageSummary.objects.filter(image_id=recording.image_id).exists()
    assert states["summary"] == "current"

    # The next recording's estimate comes from the first one's history: 40 s of ASR.
    Transcript.objects.filter(recording=recording).update(
        created_at=recording.created_at + timedelta(seconds=40)
    )
    cache.clear()
    second = lease(cast.owner)
    assert upload(api_as(cast.owner), second.pk, good_audio()).status_code == 201
    waiting = Recording.objects.get(assignment=second)
    progress = recording_progress(recording=waiting)
    assert progress.current == "transcribing"
    assert progress.estimate_seconds is not None and 30 <= progress.estimate_seconds <= 40
    assert "usually 40 s" in progress.note
    # Past the usual time, the page says it is slow rather than counting below zero.
    Recording.objects.filter(pk=waiting.pk).update(
        stage_started_at=timezone.now() - timedelta(seconds=90)
    )
    waiting.refresh_from_db()
    late = recording_progress(recording=waiting)
    assert late.estimate_seconds == 0 and "longer than usual" in late.note


def test_a_failed_recording_shows_where_it_failed(cast, api_as, capture_media: Path) -> None:
    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, good_audio()).status_code == 201
    recording = Recording.objects.get(assignment=assignment)
    Recording.objects.filter(pk=recording.pk).update(status="failed", failure_reason="asr: boom")
    assert _states(recording)["transcribing"] == "failed"
    assert recording_progress(recording=recording).current is None


def test_the_api_carries_the_stages(cast, api_as, capture_media: Path) -> None:
    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    answer = upload(api_as(cast.owner), assignment.pk, good_audio())
    assert answer.status_code == 201
    progress = answer.json()["progress"]
    assert [s["name"] for s in progress["stages"]] == [
        "uploaded",
        "transcribing",
        "cleaning",
        "summary",
    ]
    assert progress["current"] == "transcribing"
