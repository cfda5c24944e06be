"""Seekable copies of browser recordings, bulk accept, and verdicts on one's own list."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from django.core.management import call_command
from django.test import Client

from annotator_app.captions.models import Recording
from annotator_app.work.models import Assignment, AssignmentStatus
from pipelines.playback import PlaybackError, seekable_webm
from tests.captions.audio_fixtures import speech_webm
from tests.captions.browser_audio import chrome_like_webm
from tests.captions.capture_helpers import cap_campaign, lease, upload

pytestmark = pytest.mark.django_db

CUES = b"\x1c\x53\xbb\x6b"  # the Matroska Cues element's id
DURATION = b"\x44\x89"  # the Matroska Duration element's id


def _container_duration(data: bytes) -> float | None:
    with av.open(io.BytesIO(data)) as handle:
        return None if handle.duration is None else handle.duration / 1_000_000


def test_the_copy_has_duration_and_cues_and_the_same_audio() -> None:
    live = chrome_like_webm(5)
    assert CUES not in live and _container_duration(live) is None  # as the browser sends it
    fixed = seekable_webm(live)
    assert CUES in fixed and DURATION in fixed[:400]
    duration = _container_duration(fixed)
    assert duration is not None and 4.9 <= duration <= 5.2

    def packets(data: bytes) -> list[bytes]:
        with av.open(io.BytesIO(data)) as handle:
            return [bytes(p) for p in handle.demux(audio=0) if p.size]

    assert packets(fixed) == packets(live)  # remuxed, not re-encoded


def test_bytes_that_are_not_webm_are_refused_by_the_remux() -> None:
    with pytest.raises(PlaybackError):
        seekable_webm(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)


def test_an_upload_keeps_its_original_and_stores_a_seekable_copy(
    cast, api_as, capture_media: Path
) -> None:
    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    data = chrome_like_webm(5)
    assert upload(api_as(cast.owner), assignment.pk, data).status_code == 201
    recording = Recording.objects.get()
    assert (capture_media / recording.storage_key).read_bytes() == data  # untouched
    copy = (capture_media / recording.playback_key).read_bytes()
    assert CUES in copy and _container_duration(copy) is not None


def test_the_command_gives_older_recordings_their_copy_once(
    cast, api_as, capture_media: Path
) -> None:
    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, chrome_like_webm(5)).status_code == 201
    recording = Recording.objects.get()
    (capture_media / recording.playback_key).unlink()
    Recording.objects.update(playback_key="")  # as stored before copies existed
    out = io.StringIO()
    call_command("make_audio_seekable", stdout=out)
    assert "seekable copies made: 1" in out.getvalue()
    recording.refresh_from_db()
    assert CUES in (capture_media / recording.playback_key).read_bytes()
    out = io.StringIO()
    call_command("make_audio_seekable", stdout=out)
    assert "seekable copies made: 0" in out.getvalue()


# --- accept all shown ----------------------------------------------------------------------


def _three_submitted(cast, api_as) -> list[Recording]:  # type: ignore[no-untyped-def]
    campaign = cap_campaign(n_images=3)
    for _ in range(3):
        assert upload(api_as(cast.owner), lease(cast.owner).pk, speech_webm(5)).status_code == 201
    return list(Recording.objects.filter(campaign=campaign).order_by("id"))


def _accept_shown(client: Client, campaign_id: int, ids: list[object]):  # type: ignore[no-untyped-def]
    url = f"/captions/review/{campaign_id}/accept-shown/"
    return client.post(url, {"assignment": [str(i) for i in ids]})


def test_accept_all_shown_accepts_only_what_is_still_waiting(
    cast, api_as, capture_media: Path, client
) -> None:
    recordings = _three_submitted(cast, api_as)
    campaign_id = recordings[0].campaign_id
    first = recordings[0].assignment
    first.status = AssignmentStatus.REJECTED  # another reviewer was quicker
    first.save(update_fields=["status"])
    client.force_login(cast.reviewer)
    answer = _accept_shown(client, campaign_id, [r.assignment_id for r in recordings])
    assert answer.status_code == 302
    page = client.get(answer["Location"]).content.decode()
    assert "Accepted 2 descriptions." in page
    assert 'class="message message-warning" role="alert"' in page
    assert "1 not accepted: already reviewed meanwhile" in page
    statuses = [Assignment.objects.get(pk=r.assignment_id).status for r in recordings]
    assert statuses == ["rejected", "accepted", "accepted"]


def test_accept_all_shown_refuses_bad_and_foreign_ids_and_outsiders(
    cast, api_as, capture_media: Path, client
) -> None:
    recordings = _three_submitted(cast, api_as)
    campaign_id = recordings[0].campaign_id
    ids = [r.assignment_id for r in recordings]
    other = cap_campaign(n_images=1, tag="elsewhere")
    foreign = lease(cast.other)
    assert upload(api_as(cast.other), foreign.pk, speech_webm(5)).status_code == 201
    assert foreign.item.campaign_id == other.pk
    client.force_login(cast.reviewer)
    for bad in ([], ["x"], ["1; DROP"], [*ids, foreign.pk]):
        answer = _accept_shown(client, campaign_id, bad)
        assert answer.status_code == 400, bad
    assert (
        "not in this campaign" in _accept_shown(client, campaign_id, [foreign.pk]).content.decode()
    )
    for outsider in (cast.owner, cast.other):  # annotators, even the work's owner
        client.force_login(outsider)
        assert _accept_shown(client, campaign_id, ids).status_code == 404
    client.logout()
    assert _accept_shown(client, campaign_id, ids).status_code == 302  # to the login page
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(cast.reviewer)
    assert _accept_shown(csrf, campaign_id, ids).status_code == 403
    assert set(Assignment.objects.values_list("status", flat=True)) == {"submitted"}


def test_a_refused_verdict_is_shown_as_an_error(cast, api_as, capture_media: Path, client) -> None:
    recordings = _three_submitted(cast, api_as)
    client.force_login(cast.reviewer)
    url = f"/captions/review/verdict/{recordings[0].assignment_id}/"
    page = client.get(client.post(url, {"decision": "reject"})["Location"]).content.decode()
    assert 'class="message message-error" role="alert"' in page
    assert "say why the work is rejected" in page


def test_the_annotator_sees_verdicts_and_reasons_on_their_descriptions(
    cast, api_as, capture_media: Path, client
) -> None:
    recordings = _three_submitted(cast, api_as)
    client.force_login(cast.reviewer)
    first, second, _ = (r.assignment_id for r in recordings)
    client.post(f"/captions/review/verdict/{first}/", {"decision": "reject", "reason": "Too short"})
    client.post(f"/captions/review/verdict/{second}/", {"decision": "accept"})
    client.force_login(cast.owner)
    page = client.get("/captions/history/").content.decode()
    assert "Rejected: Too short" in page and "verdict-rejected" in page
    assert "Accepted" in page and "Waiting for review" in page
    client.force_login(cast.other)
    assert "Too short" not in client.get("/captions/history/").content.decode()
