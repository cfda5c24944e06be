"""Uploading a spoken description: stored once, refused with a reason, never half-written."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from annotator_app.captions.models import CleanedCaption, Recording, Transcript
from annotator_app.work.models import AssignmentStatus
from tests.captions.audio_fixtures import (
    speech_webm,
    wav_declaring_rate,
    webm_with_stretched_timestamps,
)
from tests.captions.capture_helpers import (
    MAX_SECONDS,
    good_audio,
    lease,
    stored_files,
    upload,
)

pytestmark = pytest.mark.django_db


def _nothing_stored(root: Path, assignment) -> None:  # type: ignore[no-untyped-def]
    assert stored_files(root) == []
    assert Recording.objects.count() == 0
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.LEASED


def test_a_recording_is_stored_measured_and_submits_the_assignment(
    cast, api_as, capture_campaign, capture_media: Path, django_capture_on_commit_callbacks
) -> None:
    assignment = lease(cast.owner)
    data = good_audio()
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(api_as(cast.owner), assignment.pk, data)
    assert response.status_code == 201, response.content
    body = response.json()
    recording = Recording.objects.get()
    assert body["id"] == recording.pk and body["status"] == "stored"
    assert body["transcript"] is None and body["caption"] is None
    assert recording.annotator == cast.owner and recording.image_id == assignment.item.image_id
    assert recording.mime_type == "audio/webm" and recording.size_bytes == len(data)
    assert recording.duration_seconds == pytest.approx(5.0, abs=0.1)
    assert recording.storage_key.startswith("audio/") and recording.storage_key.endswith(".webm")
    assert recording.storage_key.split("/")[-1].startswith(recording.sha256)
    # The bytes are on disk, exactly, before the answer.
    assert (capture_media / recording.storage_key).read_bytes() == data
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED and assignment.active_seconds == 42
    assert len(callbacks) == 1  # the pipeline is enqueued once the transaction commits


def test_a_retry_with_the_same_key_creates_nothing_new(
    cast, api_as, capture_campaign, capture_media: Path
) -> None:
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    key = str(uuid.uuid4())
    first = upload(client, assignment.pk, good_audio(), key)
    again = upload(client, assignment.pk, good_audio(), key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    # One upload: its file and the seekable copy beside it.
    assert Recording.objects.count() == 1 and len(stored_files(capture_media)) == 2
    # The key belongs to that upload: using it for another assignment is a conflict.
    second = lease(cast.owner)
    reused = upload(client, second.pk, good_audio(), key)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    # A second recording for a submitted assignment is refused too.
    late = upload(client, assignment.pk, good_audio())
    assert late.status_code == 409 and "submitted" in late.json()["detail"]
    # One upload: its file and the seekable copy beside it.
    assert Recording.objects.count() == 1 and len(stored_files(capture_media)) == 2


@pytest.mark.parametrize(
    ("make", "status", "words"),
    [
        (lambda: b"", 400, "empty"),
        (lambda: b"this is a text file, not audio at all", 400, "not audio"),
        (lambda: b"<html><script>alert(1)</script></html>", 400, "HTML"),
        (lambda: speech_webm(2), 400, "at least 4 s"),
        (lambda: speech_webm(MAX_SECONDS + 2), 400, "at most 8 s"),
        # 0.5 s of 16 kHz speech declared at 1333 Hz would read as 6 s, inside 4..8 s.
        (lambda: wav_declaring_rate(0.5, declared_rate=1333), 400, "sample rate of 1333 Hz"),
        # 2 s of Opus whose timestamps claim 6 s.
        (lambda: webm_with_stretched_timestamps(2, factor=3), 400, "at least 4 s"),
    ],
    ids=["empty", "text", "html", "too-short", "too-long", "low-rate", "stretched"],
)
def test_bad_audio_is_refused_with_a_reason_and_nothing_stored(
    cast, api_as, capture_campaign, capture_media: Path, make, status, words
) -> None:
    assignment = lease(cast.owner)
    response = upload(api_as(cast.owner), assignment.pk, make())
    assert response.status_code == status
    assert words in response.json()["detail"]
    _nothing_stored(capture_media, assignment)


def test_oversize_files_are_refused_by_size_and_by_declared_length(
    cast, api_as, capture_campaign, capture_media: Path, settings
) -> None:
    assignment = lease(cast.owner)
    settings.RECORDING_MAX_BYTES = 10_000
    response = upload(api_as(cast.owner), assignment.pk, good_audio())
    assert response.status_code == 413
    assert "the limit is 10000" in response.json()["detail"]
    # A huge declared Content-Length is refused before the body is read.
    early = upload(api_as(cast.owner), assignment.pk, b"x" * 10, CONTENT_LENGTH="999999999")
    assert early.status_code == 413 and "at most 10000 bytes" in early.json()["detail"]
    _nothing_stored(capture_media, assignment)


def test_malformed_requests_name_the_problem(
    cast, api_as, capture_campaign, capture_media: Path
) -> None:
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    no_key = client.post(
        "/api/v1/captions/recordings/",
        {"assignment": assignment.pk, "audio": _file(good_audio())},
        format="multipart",
    )
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["detail"]
    no_file = client.post(
        "/api/v1/captions/recordings/",
        {"assignment": assignment.pk},
        format="multipart",
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert no_file.status_code == 400 and "audio" in no_file.json()
    not_multipart = client.post(
        "/api/v1/captions/recordings/",
        {"assignment": assignment.pk},
        format="json",
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert not_multipart.status_code == 415
    _nothing_stored(capture_media, assignment)


def _file(data: bytes):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("r.webm", data, content_type="audio/webm")


def test_another_annotators_assignment_is_not_found(
    cast, api_as, capture_campaign, capture_media: Path
) -> None:
    assignment = lease(cast.owner)
    for user in (cast.other, cast.reviewer, cast.admin):
        response = upload(api_as(user), assignment.pk, good_audio())
        assert response.status_code == 404, user
    assert upload(api_as(cast.owner), 999_999, good_audio()).status_code == 404
    assert upload(api_as(None), assignment.pk, good_audio()).status_code in (401, 403)
    _nothing_stored(capture_media, assignment)


def test_a_database_failure_after_storing_deletes_the_file(
    cast, api_as, capture_campaign, capture_media: Path, monkeypatch
) -> None:
    assignment = lease(cast.owner)

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database connection was lost")

    # Fault injection: the step after the file is written fails.
    monkeypatch.setattr("annotator_app.captions.services.assignment_submit", broken)
    with pytest.raises(RuntimeError):
        upload(api_as(cast.owner), assignment.pk, good_audio())
    _nothing_stored(capture_media, assignment)


def test_the_status_shows_transcript_and_caption_once_written(
    cast, api_as, capture_campaign, capture_media: Path
) -> None:
    assignment = lease(cast.owner)
    created = upload(api_as(cast.owner), assignment.pk, good_audio()).json()
    url = f"/api/v1/captions/recordings/{created['id']}/"
    assert api_as(cast.other).get(url).status_code == 404
    assert api_as(None).get(url).status_code in (401, 403)
    for user in (cast.owner, cast.reviewer, cast.admin):
        assert api_as(user).get(url).json()["status"] == "stored"

    recording = Recording.objects.get()
    transcript = Transcript.objects.create(
        recording=recording, text="a red bicycle um leans on a wall", model_name="tiny.en"
    )
    CleanedCaption.objects.create(
        transcript=transcript,
        rule_text="a red bicycle leans on a wall",
        text="A red bicycle leans on a wall.",
        prompt_version="v1",
        model_name="smollm2",
    )
    Recording.objects.filter(pk=recording.pk).update(status="done")
    body = api_as(cast.owner).get(url).json()
    assert body["status"] == "done" and body["status_label"] == "Done"
    assert body["transcript"] == "a red bicycle um leans on a wall"
    assert body["caption"] == "A red bicycle leans on a wall."

    listed = api_as(cast.owner).get("/api/v1/captions/recordings/").json()
    assert [r["id"] for r in listed["results"]] == [recording.pk]
    assert api_as(cast.other).get("/api/v1/captions/recordings/").json()["results"] == []


def test_only_the_owner_reviewers_and_admins_hear_the_audio(
    cast, api_as, capture_campaign, capture_media: Path, client
) -> None:
    assignment = lease(cast.owner)
    data = good_audio()
    body = upload(api_as(cast.owner), assignment.pk, data).json()
    recording = Recording.objects.get(pk=body["id"])
    path = body["audio_url"].removeprefix("http://testserver")
    assert path == f"/media/{recording.playback_key}"  # players get the seekable copy
    copy = (capture_media / recording.playback_key).read_bytes()
    original = f"/media/{recording.storage_key}"
    for user, expected in ((cast.owner, 200), (cast.reviewer, 200), (cast.admin, 200)):
        client.force_login(user)
        for url, content in ((path, copy), (original, data)):
            response = client.get(url)
            assert response.status_code == expected
            assert response["Content-Type"] == "audio/webm"
            assert response["X-Content-Type-Options"] == "nosniff"
            assert b"".join(response.streaming_content) == content
    for url in (path, original):
        client.force_login(cast.other)
        assert client.get(url).status_code == 404
        client.logout()
        assert client.get(url).status_code == 302  # to the login page


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_uploads_with_one_key_store_one_recording(
    cast, capture_campaign, capture_media: Path
) -> None:
    from annotator_app.captions.services import recording_submit

    assignment = lease(cast.owner)
    key = uuid.uuid4().hex
    data = good_audio()

    def send(_: int):  # type: ignore[no-untyped-def]
        try:
            result = recording_submit(
                user=cast.owner, assignment_id=assignment.pk, data=data, idempotency_key=key
            )
            return result.recording.pk, result.created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(send, range(4)))
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    # One upload: its file and the seekable copy beside it.
    assert Recording.objects.count() == 1 and len(stored_files(capture_media)) == 2


def test_a_reviewer_of_other_campaigns_neither_sees_nor_hears_it(
    cast, api_as, capture_media: Path, client
) -> None:
    from annotator_app.accounts.models import Role
    from annotator_app.accounts.services import user_ensure
    from tests.captions.capture_helpers import cap_campaign

    listed = user_ensure(username="listed", password="pw-listed-123", role=Role.REVIEWER)[0]
    cap_campaign(tag="reviewed", reviewers=[listed])
    assignment = lease(cast.owner)
    body = upload(api_as(cast.owner), assignment.pk, good_audio()).json()
    url = f"/api/v1/captions/recordings/{body['id']}/"
    audio = body["audio_url"].removeprefix("http://testserver")
    for user, expected in ((cast.reviewer, 404), (listed, 200), (cast.admin, 200)):
        assert api_as(user).get(url).status_code == expected, user
        client.force_login(user)
        assert client.get(audio).status_code == expected, user


def test_an_expired_lease_still_takes_its_recording_unless_the_item_went_to_others(
    cast, api_as, capture_media: Path
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from annotator_app.work.models import Assignment
    from annotator_app.work.services import assignments_reclaim_expired
    from tests.captions.capture_helpers import cap_campaign

    campaign = cap_campaign(n_images=1, tag="slow")
    slow = lease(cast.owner)
    later = timezone.now() + timedelta(seconds=campaign.lease_seconds + 5)
    assert assignments_reclaim_expired(campaign=campaign, now=later) == 1
    response = upload(api_as(cast.owner), slow.pk, good_audio())
    assert response.status_code == 201  # a slow annotator's words are not lost
    assert Assignment.objects.get(pk=slow.pk).status == AssignmentStatus.SUBMITTED

    # The same again, but someone else took the freed slot first: 409, nothing kept.
    campaign_two = cap_campaign(n_images=1, tag="taken")
    slow_two = lease(cast.owner)
    assert assignments_reclaim_expired(campaign=campaign_two, now=later) == 1
    assert lease(cast.other).item_id == slow_two.item_id
    refused = upload(api_as(cast.owner), slow_two.pk, good_audio())
    assert refused.status_code == 409 and "other annotators" in refused.json()["detail"]
    # One upload: its file and the seekable copy beside it.
    assert Recording.objects.count() == 1 and len(stored_files(capture_media)) == 2
