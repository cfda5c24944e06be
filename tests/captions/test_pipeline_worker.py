"""The pipeline through a real Celery worker (in a thread), real Redis and PostgreSQL.

The happy path runs the real tiny.en model and the real local LLM; the outage test
points the clean stage at the failure-injecting fake endpoint.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from annotator_app.captions import pipeline, tasks
from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from annotator_app.celery import app
from tests.captions.pipeline_helpers import (
    make_campaign,
    make_recording,
    speech_bytes,
    wait_until,
    words_of,
    worker,
)
from tests.llm_fixtures import fail

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHORT_DESCRIPTION = "A red bicycle leans against a brick wall under a window."


def status_of(rec: Recording) -> str:
    return Recording.objects.values_list("status", flat=True).get(id=rec.id)


def test_a_recording_becomes_transcript_cleaned_caption_and_summary(settings) -> None:
    # The default configuration: CAPTION_LLM=auto leaves cleaning and the summary to the
    # rules with the bundled model. The real model's answers, validated or rejected, are
    # covered in tests/pipelines (test_cleaning.py, test_summary.py); the summary of
    # several captions and the exactly-once trigger in test_pipeline.py.
    settings.CAPTION_LLM = "auto"
    settings.LLM_MODEL = "SmolLM2-135M-Instruct"
    _, (item,) = make_campaign(overlap=1)
    # A short description: the weak CPU model's generation time grows with its length.
    rec = make_recording(item, audio=speech_bytes(SHORT_DESCRIPTION))

    with worker():
        pipeline.pipeline_start(rec.id)
        wait_until(
            lambda: ImageSummary.objects.filter(
                image=item.image, status__in=(SummaryStatus.DONE, SummaryStatus.FAILED)
            ).exists(),
            timeout=600,
            what="the recording cleaned and the image summarised",
        )

    rec.refresh_from_db()
    assert rec.status == RecordingStatus.DONE, rec.failure_reason
    assert words_of(rec.transcript.text) >= {"red", "bicycle", "brick", "wall"}
    cleaned = rec.transcript.cleaned
    # Raw transcript and caption are both kept, with the prompt version and model.
    assert cleaned.text and cleaned.text == cleaned.rule_text and cleaned.model_name == "rules"
    assert cleaned.flagged == bool(cleaned.flag_reasons) and not cleaned.used_fallback
    assert cleaned.prompt_version and cleaned.model_name
    assert Transcript.objects.filter(recording=rec).count() == 1
    summary = ImageSummary.objects.get(campaign=item.campaign, image=item.image)
    assert summary.status == SummaryStatus.DONE, summary.failure_reason
    assert summary.text == cleaned.text and summary.source_caption == cleaned
    assert (summary.model_name, summary.flagged) == ("rules", False) and summary.prompt_version
    assert list(summary.sources.all()) == [cleaned]


def test_llm_outage_retries_then_fails_with_the_reason_and_reprocess_recovers(
    fake_llm, fake_llm_settings, monkeypatch
) -> None:
    monkeypatch.setattr(app.tasks[tasks.clean_recording.name], "max_retries", 2)
    _, (item,) = make_campaign(overlap=2)
    rec = make_recording(item, status=RecordingStatus.TRANSCRIBED)
    Transcript.objects.create(
        recording=rec, text="Um, a red bicycle, a red bicycle by the the wall.", model_name="t"
    )
    # Every request fails: 3 task runs x 2 client attempts.
    fake_llm.push(*[fail(500) for _ in range(6)])

    with worker(queues="llm"):
        pipeline.enqueue_clean(rec.id)
        wait_until(
            lambda: status_of(rec) == RecordingStatus.FAILED,
            timeout=120,
            what="the clean stage to give up",
        )
        rec.refresh_from_db()
        assert rec.failure_reason.startswith("clean: StageUnavailable")
        assert "500" in rec.failure_reason
        assert len(fake_llm.requests) == 6
        # Nothing is lost: the transcript stays, and reprocessing finishes the job.
        assert Transcript.objects.filter(recording=rec).exists()
        assert not CleanedCaption.objects.filter(transcript__recording=rec).exists()

        call_command("reprocess", "--failed")
        wait_until(
            lambda: status_of(rec) == RecordingStatus.DONE,
            timeout=120,
            what="the reprocessed clean stage",
        )

    cleaned = CleanedCaption.objects.get(transcript__recording=rec)
    assert "bicycle" in cleaned.text and not cleaned.used_fallback


def test_an_upload_through_the_api_reaches_the_asr_worker(cast, api_as) -> None:
    from tests.captions.audio_fixtures import speech_webm
    from tests.captions.capture_helpers import cap_campaign, lease, upload

    cap_campaign(n_images=1)
    assignment = lease(cast.owner)

    with worker(queues="asr"):
        response = upload(api_as(cast.owner), assignment.id, speech_webm(6))
        assert response.status_code == 201, response.content
        rec = Recording.objects.get(assignment=assignment)
        wait_until(
            lambda: status_of(rec) == RecordingStatus.TRANSCRIBED,
            timeout=120,
            what="the uploaded recording to be transcribed",
        )

    rec.refresh_from_db()
    assert {"bicycle", "brick"} <= words_of(rec.transcript.text)
