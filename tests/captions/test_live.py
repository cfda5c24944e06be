"""P12 live guidance: the live endpoint, the `live` queue's worker, coverage at submit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.captions.audio_fixtures import speech_webm
from tests.captions.capture_helpers import MAX_SECONDS, cap_campaign, lease, upload
from tests.captions.pipeline_helpers import wait_until, worker

URL = "/api/v1/captions/live/{}/"


@pytest.fixture(autouse=True)
def _clean_live_keys(settings) -> Any:  # type: ignore[no-untyped-def]
    """Each test starts with no live state (keys are per assignment id, which repeat)."""
    from annotator_app.captions.live import _redis

    client = _redis()
    for key in client.scan_iter("live:*"):
        client.delete(key)
    yield
    for key in client.scan_iter("live:*"):
        client.delete(key)


def post_chunk(
    client: Any, assignment_id: int, take: str, offset: int, data: bytes, **fields: Any
) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {
        "take": take,
        "offset": str(offset),
        "received_ms": str(fields.pop("received_ms", 1000)),
        "audio": SimpleUploadedFile("live.webm", data, content_type="audio/webm"),
        **{k: str(v) for k, v in fields.items()},
    }
    return client.post(URL.format(assignment_id), form, format="multipart")


def live_campaign(**fields: Any) -> Any:
    fields.setdefault("live_guidance", True)
    fields.setdefault("max_seconds", MAX_SECONDS * 4)
    return cap_campaign(n_images=1, **fields)


# --- who may send what -----------------------------------------------------------------------


def test_only_the_assignments_annotator_may_send_or_read(db, cast, api_as) -> None:
    live_campaign()
    assignment = lease(cast.owner)
    take = uuid.uuid4().hex
    audio = speech_webm(2)
    for intruder in (cast.other, cast.reviewer, cast.admin):
        answer = post_chunk(api_as(intruder), assignment.pk, take, 0, audio)
        assert answer.status_code == 404, answer.content
        assert "not found" in answer.json()["detail"]
        assert api_as(intruder).get(URL.format(assignment.pk), {"take": take}).status_code == 404
    assert post_chunk(api_as(None), assignment.pk, take, 0, audio).status_code in (401, 403)

    answer = post_chunk(api_as(cast.owner), assignment.pk, take, 0, audio)
    assert answer.status_code == 200, answer.content
    view = answer.json()
    assert view["take"] == take and view["paused"] is False
    assert [q["covered"] for q in view["coverage"]["questions"]] == [False] * 7


def test_a_post_without_the_csrf_token_is_refused(db, cast) -> None:
    from django.test import Client

    live_campaign()
    assignment = lease(cast.owner)
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.owner)
    answer = post_chunk(client, assignment.pk, uuid.uuid4().hex, 0, speech_webm(2))
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]


def test_live_guidance_off_or_a_finished_assignment_is_refused(db, cast, api_as) -> None:
    cap_campaign(n_images=1, tag="off")  # live_guidance defaults to off
    assignment = lease(cast.owner)
    answer = post_chunk(api_as(cast.owner), assignment.pk, uuid.uuid4().hex, 0, speech_webm(2))
    assert answer.status_code == 409
    assert "live guidance is off" in answer.json()["detail"]


def test_bad_chunks_are_refused_with_the_reason(db, cast, api_as, settings) -> None:
    live_campaign()
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    take = uuid.uuid4().hex
    audio = speech_webm(3)

    answer = post_chunk(client, assignment.pk, "bad take!", 0, audio)
    assert answer.status_code == 400 and "take must be" in answer.json()["detail"]
    answer = post_chunk(client, assignment.pk, take, 0, b"<html><script>alert(1)</script>")
    assert answer.status_code == 400 and "does not start like" in answer.json()["detail"]
    answer = post_chunk(client, assignment.pk, take, -1, audio)
    assert answer.status_code == 400 and "offset" in answer.json()

    assert post_chunk(client, assignment.pk, take, 0, audio[:1000]).status_code == 200
    # A chunk that does not continue the bytes held: told where to resume.
    answer = post_chunk(client, assignment.pk, take, 5000, audio[5000:6000])
    assert answer.status_code == 409 and answer.json()["expected_offset"] == 1000
    # Another take of the same assignment, not started at 0, is not mixed in.
    answer = post_chunk(client, assignment.pk, uuid.uuid4().hex, 1000, audio[1000:2000])
    assert answer.status_code == 409 and answer.json()["expected_offset"] == 0

    settings.LIVE_MAX_BYTES = 1500
    answer = post_chunk(client, assignment.pk, take, 1000, audio[1000:2000])
    assert answer.status_code == 413 and "at most 1500 bytes" in answer.json()["detail"]
    settings.LIVE_MAX_BYTES = 16 * 1024 * 1024
    assert post_chunk(client, assignment.pk, take, 1000, audio[1000:2000]).status_code == 200


# --- the live worker ---------------------------------------------------------------------------

SPOKEN = (
    "This is a photo of a bakery. There are two people walking past the window. "
    "The text on the sign says fresh bread."
)


def spoken_webm() -> bytes:
    """SPOKEN by espeak-ng, Opus in WebM: the page's kind of audio."""
    import io
    import tempfile
    from pathlib import Path

    import av
    import numpy as np

    from tests.captions.audio_fixtures import espeak_wav

    with tempfile.TemporaryDirectory() as tmp:
        wav = espeak_wav(Path(tmp) / "s.wav", SPOKEN)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
        with av.open(str(wav)) as src:
            parts = [
                f.to_ndarray()[0] for fr in src.decode(audio=0) for f in resampler.resample(fr)
            ]
    samples = np.concatenate(parts).astype(np.float32)
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as dst:
        stream = dst.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = 32_000
        for start in range(0, len(samples), 960 * 25):
            frame = av.AudioFrame.from_ndarray(
                samples[np.newaxis, start : start + 960 * 25], format="flt", layout="mono"
            )
            frame.sample_rate = 48_000
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_live_worker_transcribes_and_the_submit_stores_the_coverage(
    cast, api_as, capture_media
) -> None:
    from annotator_app.captions.models import Recording

    live_campaign(min_seconds=4)
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    take = uuid.uuid4().hex
    audio = spoken_webm()
    pieces = [audio[i : i + 8000] for i in range(0, len(audio), 8000)]
    with worker(queues="live"):
        offset = 0
        for n, piece in enumerate(pieces, start=1):
            final = n == len(pieces)
            answer = post_chunk(
                client, assignment.pk, take, offset, piece, received_ms=n * 1000, final=final
            )
            assert answer.status_code == 200, answer.content
            offset += len(piece)

        def view() -> dict[str, Any]:
            return client.get(URL.format(assignment.pk), {"take": take}).json()

        def whole_take_committed() -> bool:
            seen = view()
            return seen["heard_seconds"] > 7 and seen["committed"] and not seen["tentative"]

        wait_until(whole_take_committed, timeout=240, what="the live text of the whole take")
    final_view = view()
    assert {"photo", "people", "fresh"} <= set(
        final_view["committed"].lower().replace(".", "").split()
    )
    covered = {q["key"] for q in final_view["coverage"]["questions"] if q["covered"]}
    # "two" -> objects and counts; "says" -> text; "this is a photo of" -> first glance.
    assert {"objects_counts", "text", "first_glance"} <= covered, final_view
    assert final_view["paused"] is False and final_view["steps"] >= 1

    # The recording is uploaded whole with the take's key: its coverage is kept.
    answer = upload(client, assignment.pk, audio, key=take)
    assert answer.status_code == 201, answer.content
    recording = Recording.objects.get()
    assert recording.live_coverage is not None
    stored = {q["key"] for q in recording.live_coverage["questions"] if q["covered"]}
    assert stored == covered
    assert recording.live_coverage["live_seconds"] > 5
    assert answer.json()["live_coverage"]["covered"] == len(covered)
    # A last chunk arriving after the submit is answered, not refused, and not kept.
    late = post_chunk(client, assignment.pk, take, len(audio), b"x", final=True)
    assert late.status_code == 200 and late.json()["committed"] == final_view["committed"]
    other = post_chunk(client, assignment.pk, uuid.uuid4().hex, 0, audio[:4000])
    assert other.status_code == 409 and "not leased" in other.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_with_no_live_worker_the_view_says_paused_and_the_submit_is_unaffected(
    cast, api_as, capture_media
) -> None:
    from annotator_app.captions.models import Recording
    from tests.captions.pipeline_helpers import purge_queues

    purge_queues()
    live_campaign(min_seconds=4)
    assignment = lease(cast.owner)
    client = api_as(cast.owner)
    take = uuid.uuid4().hex
    audio = speech_webm(6)
    half = len(audio) // 2
    assert (
        post_chunk(client, assignment.pk, take, 0, audio[:half], received_ms=3000).json()["paused"]
        is False
    )
    # Nobody consumes the live queue: the text stays empty while the audio goes on.
    view = post_chunk(client, assignment.pk, take, half, audio[half:], received_ms=20_000).json()
    assert view["paused"] is True and "behind" in view["paused_reason"]
    assert view["text"] == ""

    answer = upload(client, assignment.pk, audio, key=take)
    assert answer.status_code == 201, answer.content
    assert Recording.objects.get().live_coverage is None  # no live text, nothing claimed
    purge_queues()


def test_live_steps_go_to_their_own_queue(db) -> None:
    from annotator_app.captions import queueing, tasks
    from annotator_app.celery import app

    route = app.amqp.router.route({}, queueing.LIVE_STEP)["queue"].name
    assert route == "live"
    assert tasks.live_step.name == queueing.LIVE_STEP
    assert app.amqp.router.route({}, tasks.transcribe_recording.name)["queue"].name == "asr"
    # A lost live step is not redelivered: the next chunk queues a fresh one.
    assert tasks.live_step.acks_late is False


def test_admins_switch_live_guidance_on_and_off_by_campaign(db, cast, api_as) -> None:
    from annotator_app.work.models import Campaign

    payload = {"name": "live on", "kind": "cap", "live_guidance": True}
    created = api_as(cast.admin).post("/api/v1/work/campaigns/", payload, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["live_guidance"] is True
    campaign = Campaign.objects.get(name="live on")
    assert campaign.live_guidance is True
    answer = api_as(cast.admin).patch(
        f"/api/v1/work/campaigns/{campaign.pk}/", {"live_guidance": False}, format="json"
    )
    assert answer.status_code == 200, answer.content
    campaign.refresh_from_db()
    assert campaign.live_guidance is False
    assert Campaign._meta.get_field("live_guidance").default is False  # off unless asked
    refused = api_as(cast.owner).post("/api/v1/work/campaigns/", payload, format="json")
    assert refused.status_code == 403
