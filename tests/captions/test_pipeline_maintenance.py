"""Sweeper, reprocess, pipeline_status and the admin failures view (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotator_app.captions import maintenance, pipeline
from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    SummaryStatus,
    Transcript,
)
from tests.captions.pipeline_helpers import make_campaign, make_recording


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    calls: dict[str, list[int]] = {"transcribe": [], "clean": [], "summary": []}
    for stage in calls:
        # maintenance imported the names: replace them there and in pipeline.
        monkeypatch.setattr(pipeline, f"enqueue_{stage}", calls[stage].append)
        monkeypatch.setattr(maintenance, f"enqueue_{stage}", calls[stage].append)
    return calls


def age(row: Recording | ImageSummary, seconds: float) -> None:
    type(row).objects.filter(id=row.id).update(
        stage_started_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_sweeper_re_enqueues_lost_and_abandoned_work_once(
    db, enqueued, settings, django_capture_on_commit_callbacks
) -> None:
    settings.PIPELINE_STUCK_SECONDS = 300
    _, (item,) = make_campaign(overlap=1)
    lost = make_recording(item)  # its ASR message was lost
    fresh = make_recording(item)  # just stored: the queue has it
    dead = make_recording(item, status=RecordingStatus.CLEANING)  # its worker died
    Transcript.objects.create(recording=dead, text="a dog", model_name="t")
    hopeless = make_recording(item, status=RecordingStatus.TRANSCRIBING)
    Recording.objects.filter(id=hopeless.id).update(attempts=settings.PIPELINE_MAX_ATTEMPTS)
    summary = ImageSummary.objects.create(
        campaign=item.campaign, image=item.image, status=SummaryStatus.RUNNING
    )
    age(lost, 400)
    age(dead, pipeline.stage_time_limit("cleaning") + 120)
    age(hopeless, pipeline.stage_time_limit("transcribing") + 120)
    age(summary, pipeline.stage_time_limit("running") + 120)

    report = maintenance.pipeline_sweep()

    assert (report.requeued, report.reset, report.gave_up) == (1, 2, 1)
    assert enqueued == {"transcribe": [lost.id], "clean": [dead.id], "summary": [summary.id]}
    statuses = dict(Recording.objects.values_list("id", "status"))
    assert statuses[lost.id] == RecordingStatus.STORED
    assert statuses[fresh.id] == RecordingStatus.STORED
    assert statuses[dead.id] == RecordingStatus.TRANSCRIBED
    assert statuses[hopeless.id] == RecordingStatus.FAILED
    assert "gave up after 5 runs" in Recording.objects.get(id=hopeless.id).failure_reason
    summary.refresh_from_db()
    assert summary.status == SummaryStatus.PENDING

    # The next sweep, a minute later, does not send the same work again.
    again = maintenance.pipeline_sweep(now=timezone.now() + timedelta(seconds=60))
    assert (again.requeued, again.reset, again.gave_up) == (0, 0, 0)
    assert len(enqueued["transcribe"]) == 1


def _done(item) -> Recording:
    rec = make_recording(item, status=RecordingStatus.DONE)
    t = Transcript.objects.create(recording=rec, text="a dog on a mat", model_name="t")
    CleanedCaption.objects.create(
        transcript=t, rule_text="a dog", text="A dog.", prompt_version="v", model_name="m"
    )
    return rec


def test_reprocess_command_by_recording_stage_failure_and_flag(
    db, enqueued, django_capture_on_commit_callbacks
) -> None:
    _, (item,) = make_campaign(overlap=1)
    failed_asr = make_recording(item, status=RecordingStatus.FAILED)
    failed_clean = make_recording(item, status=RecordingStatus.FAILED)
    Transcript.objects.create(recording=failed_clean, text="a cat", model_name="t")
    flagged = make_recording(item, status=RecordingStatus.FLAGGED)
    Transcript.objects.create(recording=flagged, text="you", model_name="t", flagged=True)
    done = _done(item)
    ImageSummary.objects.create(campaign=item.campaign, image=item.image, status="done")

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--failed", stdout=out)
    assert f"recording {failed_asr.id}: failed -> stored, asr enqueued" in out.getvalue()
    assert f"recording {failed_clean.id}: failed -> transcribed, clean enqueued" in out.getvalue()
    assert enqueued["transcribe"] == [failed_asr.id]
    assert enqueued["clean"] == [failed_clean.id]
    # Its sources change: the image's summary goes and is made again once all are clean.
    assert not ImageSummary.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--flagged", "--stage", "clean", stdout=out)
    flagged.refresh_from_db()
    assert flagged.status == RecordingStatus.TRANSCRIBED
    assert enqueued["clean"][-1] == flagged.id

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--recording", str(done.id), "--stage", "asr", stdout=out)
    done.refresh_from_db()
    assert done.status == RecordingStatus.STORED
    assert not Transcript.objects.filter(recording=done).exists()
    assert enqueued["transcribe"][-1] == done.id

    err = StringIO()
    with pytest.raises(CommandError, match="nothing reprocessed"):
        call_command("reprocess", "--recording", "999999", stdout=out, stderr=err)
    assert "recording 999999 does not exist" in err.getvalue()
    with pytest.raises(CommandError, match="say what to reprocess"):
        call_command("reprocess")


def test_reprocess_by_item_and_summary_stage(
    db, enqueued, django_capture_on_commit_callbacks
) -> None:
    _, (item,) = make_campaign(overlap=2)
    a, b = _done(item), _done(item)

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--item", str(item.id), "--stage", "summary", stdout=out)
    summary = ImageSummary.objects.get(campaign=item.campaign, image=item.image)
    assert f"summary {summary.id} created and enqueued" in out.getvalue()
    assert enqueued["summary"] == [summary.id]

    ImageSummary.objects.filter(id=summary.id).update(status=SummaryStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--failed", stdout=out)
    summary.refresh_from_db()
    assert summary.status == SummaryStatus.PENDING
    assert enqueued["summary"] == [summary.id, summary.id]

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--item", str(item.id), stdout=out)
    assert sorted(enqueued["clean"]) == sorted([a.id, b.id])
    assert not CleanedCaption.objects.filter(transcript__recording__in=[a, b]).exists()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", "--stage", "clean", stdout=out)
    assert "2 reprocessed" in out.getvalue().splitlines()[-1]


def test_pipeline_status_shows_counts_stuck_rows_and_failures(db) -> None:
    _, (item,) = make_campaign()
    stuck = make_recording(item, status=RecordingStatus.TRANSCRIBING)
    age(stuck, 5000)
    make_recording(item)
    failed = make_recording(item)
    pipeline.recording_fail(recording_id=failed.id, reason="clean: LLMUnavailable: HTTP 500")
    flagged = make_recording(item, status=RecordingStatus.FLAGGED)
    Transcript.objects.create(
        recording=flagged, text="you", model_name="t", flagged=True,
        flag_reasons=["silence phrase: the whole transcript is 'you'"],
    )  # fmt: skip

    out = StringIO()
    call_command("pipeline_status", stdout=out)
    text = out.getvalue()

    assert "recordings: stored 1, transcribing 1, transcribed 0" in text
    assert "failed 1" in text
    assert f"recording {stuck.id}: transcribing for 5000 s" in text
    assert f"recording {failed.id} at " in text and "clean: LLMUnavailable: HTTP 500" in text
    assert f"recording {flagged.id} at " in text
    assert "silence phrase: the whole transcript is 'you'" in text


def test_admin_lists_failures_and_only_admins_reprocess(db, cast, client) -> None:
    _, (item,) = make_campaign()
    failed = make_recording(item)
    pipeline.recording_fail(recording_id=failed.id, reason="asr: audio file missing")
    ok = make_recording(item, status=RecordingStatus.DONE)

    client.force_login(cast.admin)
    response = client.get("/admin/captions/recording/failures/", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "asr: audio file missing" in page
    assert f'value="{ok.id}"' not in page
    for url in (
        "/admin/captions/recording/?q=missing",
        f"/admin/captions/recording/?q={failed.id}",
        "/admin/captions/recording/?problem=fallback",
        "/admin/captions/transcript/",
        "/admin/captions/cleanedcaption/",
        "/admin/captions/imagesummary/",
    ):
        assert client.get(url).status_code == 200, url

    response = client.post(
        "/admin/captions/recording/",
        {"action": "reprocess_asr", "_selected_action": [failed.id]},
        follow=True,
    )
    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status == RecordingStatus.STORED

    # Staff without the admin role (e.g. a reviewer given staff access) cannot reprocess.
    cast.reviewer.is_staff = True
    cast.reviewer.save()
    from django.contrib.auth.models import Permission

    cast.reviewer.user_permissions.add(Permission.objects.get(codename="view_recording"))
    pipeline.recording_fail(recording_id=failed.id, reason="again")
    client.force_login(cast.reviewer)
    response = client.post(
        "/admin/captions/recording/",
        {"action": "reprocess_asr", "_selected_action": [failed.id]},
    )
    failed.refresh_from_db()
    assert failed.status == RecordingStatus.FAILED


def test_beat_runs_the_sweeper_and_stages_route_to_their_queues(db, enqueued) -> None:
    from django.conf import settings

    from annotator_app.captions import tasks
    from annotator_app.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["captions-pipeline-sweep"]
    assert entry["task"] == tasks.pipeline_sweep.name
    assert entry["task"] in app.tasks
    queues = {
        name: app.amqp.router.route({}, name)["queue"].name
        for name in (tasks.transcribe_recording.name, tasks.clean_recording.name,
                     tasks.summarize_image.name, tasks.pipeline_sweep.name)
    }  # fmt: skip
    assert list(queues.values()) == ["asr", "llm", "llm", "default"]
    for task in (tasks.transcribe_recording, tasks.clean_recording, tasks.summarize_image):
        assert task.acks_late and task.reject_on_worker_lost and task.time_limit

    # The beat task itself: a sweep over nothing reports nothing.
    assert tasks.pipeline_sweep() == "requeued 0, reset 0, gave up 0"
