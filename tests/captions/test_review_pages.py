"""The reviewers' pages for spoken descriptions: listen, read, accept or reject."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.captions.models import Recording
from annotator_app.work.models import Assignment, AssignmentStatus, WorkItem
from annotator_app.work.services import assignment_next
from tests.captions.capture_helpers import cap_campaign, good_audio, lease, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(cast, api_as, capture_media: Path) -> Recording:
    """The owner's recording of a one-image cap campaign, waiting for a verdict."""
    cap_campaign(n_images=1, tag="review")
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, good_audio()).status_code == 201
    return Recording.objects.get(assignment=assignment)


def verdict(client: Client, recording: Recording, decision: str, reason: str = ""):  # type: ignore[no-untyped-def]
    url = f"/captions/review/verdict/{recording.assignment_id}/"
    return client.post(url, {"decision": decision, "reason": reason})


def status_of(recording: Recording) -> str:
    return Assignment.objects.values_list("status", flat=True).get(pk=recording.assignment_id)


def test_a_reviewer_sees_the_queue_and_accepts(cast, client, submitted: Recording) -> None:
    client.force_login(cast.reviewer)
    index = client.get("/captions/review/").content.decode()
    assert "campaign review" in index and "1 waiting" in index
    page = client.get(f"/captions/review/{submitted.campaign_id}/").content.decode()
    # Players get the seekable copy made at upload; the original stays stored.
    assert submitted.playback_key.endswith(".play.webm")
    assert f'src="/media/{submitted.playback_key}"' in page and "owner" in page
    assert ">Accept</button>" in page and ">Reject</button>" in page
    assert " style=" not in page
    answer = verdict(client, submitted, "accept")
    assert answer.status_code == 302
    assert status_of(submitted) == AssignmentStatus.ACCEPTED
    followed = client.get(answer["Location"]).content.decode()
    assert "accepted" in followed and "Nothing waits for review" in followed


def test_reject_needs_a_reason_and_frees_the_slot(cast, client, submitted: Recording) -> None:
    client.force_login(cast.reviewer)
    followed = client.get(verdict(client, submitted, "reject")["Location"]).content.decode()
    assert "say why the work is rejected" in followed
    assert status_of(submitted) == AssignmentStatus.SUBMITTED  # nothing changed

    verdict(client, submitted, "reject", "The description names the wrong objects.")
    assert status_of(submitted) == AssignmentStatus.REJECTED
    assert WorkItem.objects.get(pk=submitted.assignment.item_id).open_slots == 1
    # Someone else gets the image now; the owner's recording stays stored.
    assert assignment_next(user=cast.other, kind="cap") is not None
    assert Recording.objects.filter(pk=submitted.pk).exists()


def test_bad_verdicts_are_refused(cast, client, submitted: Recording) -> None:
    client.force_login(cast.reviewer)
    assert verdict(client, submitted, "maybe").status_code == 400
    too_long = verdict(client, submitted, "reject", "x" * 2001)
    assert too_long.status_code == 400 and b"reason: at most 2000 characters" in too_long.content
    # The same assignment through another kind's review form (one shared form handler).
    for other_kind in ("points", "ama"):
        url = f"/{other_kind}/review/verdict/{submitted.assignment_id}/"
        assert client.post(url, {"decision": "accept"}).status_code == 404
    assert client.get(f"/captions/review/verdict/{submitted.assignment_id}/").status_code == 405
    assert status_of(submitted) == AssignmentStatus.SUBMITTED


def test_annotators_and_unlisted_reviewers_get_nothing(cast, client, submitted: Recording) -> None:
    queue = f"/captions/review/{submitted.campaign_id}/"
    for attacker in (cast.owner, cast.other):
        client.force_login(attacker)
        assert client.get("/captions/review/").status_code == 404
        assert client.get(queue).status_code == 404
        assert verdict(client, submitted, "accept").status_code == 404
    # A campaign that lists its reviewers is closed to the others.
    listed = user_ensure(username="listed", password="pw-listed-123", role=Role.REVIEWER)[0]
    submitted.campaign.reviewers.add(listed)
    client.force_login(cast.reviewer)
    assert client.get(queue).status_code == 404
    assert verdict(client, submitted, "accept").status_code == 404
    assert "campaign review" not in client.get("/captions/review/").content.decode()
    client.logout()
    assert verdict(client, submitted, "accept").status_code == 302  # to the login page
    assert status_of(submitted) == AssignmentStatus.SUBMITTED
    client.force_login(listed)
    assert verdict(client, submitted, "accept").status_code == 302
    assert status_of(submitted) == AssignmentStatus.ACCEPTED


def test_a_verdict_without_the_csrf_token_is_refused(cast, submitted: Recording) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.reviewer)
    assert verdict(client, submitted, "accept").status_code == 403
    assert status_of(submitted) == AssignmentStatus.SUBMITTED


# --- what the review page points out: unsure ASR words, caption and summary flags ----------


def _transcribe_and_clean(
    recording: Recording, words: list[tuple[str, float]], client=None
) -> None:  # type: ignore[no-untyped-def]
    """Run the real stage services on an ASR result with these word probabilities."""
    from annotator_app.captions import pipeline
    from pipelines.asr import AsrResult, AsrWord

    Recording.objects.filter(pk=recording.pk).update(status="transcribing")
    text = " ".join(w for w, _ in words)
    result = AsrResult(
        text=text, language="en", duration=3.0, segments=[], model_name="tiny.en", settings={},
        words=[AsrWord(i * 0.4, i * 0.4 + 0.4, w, p) for i, (w, p) in enumerate(words)],
    )  # fmt: skip
    pipeline.recording_transcribe_complete(recording_id=recording.pk, result=result)
    pipeline.recording_clean(recording_id=recording.pk, client=client)


SAID = [("Um,", 0.9), ("a", 0.97), ("candle", 0.31), ("sits", 0.93), ("on", 0.98),
        ("the", 0.99), ("<b>stove</b>.", 0.44)]  # fmt: skip


def test_unsure_words_are_marked_and_flags_shown_escaped(
    cast, client, submitted: Recording, settings, monkeypatch
) -> None:
    from annotator_app.captions import pipeline

    monkeypatch.setattr(pipeline, "enqueue_summary", lambda summary_id: None)
    settings.CAPTION_LLM = "off"
    settings.ASR_UNCERTAIN_BELOW = 0.5
    _transcribe_and_clean(submitted, SAID)
    client.force_login(cast.reviewer)
    page = client.get(f"/captions/review/{submitted.campaign_id}/").content.decode()
    mark = '<mark class="uncertain" title="The ASR was unsure ({}): listen">{}</mark>'
    assert mark.format("0.31", "candle") in page
    assert mark.format("0.44", "&lt;b&gt;stove&lt;/b&gt;.") in page
    transcript = page.split("<span data-transcript-text>")[1].split("</span>")[0]
    caption = page.split("<span data-caption-text>")[1].split("</span>")[0]
    assert transcript.count('class="uncertain"') == 2
    assert mark.format("0.31", "candle") in caption  # the caption marks the same word
    assert "<b>stove</b>" not in page
    assert "Flagged: check before accepting." in page
    assert "uncertain ASR words, listen before accepting: candle, &lt;b&gt;stove&lt;/b&gt;" in page
    assert "(rule-cleaned)" in page and " style=" not in page


def test_a_rejected_llm_edit_shows_its_reasons(
    cast, client, submitted: Recording, settings, monkeypatch, fake_llm
) -> None:
    from annotator_app.captions import pipeline
    from pipelines.llm import LLMClient
    from tests.llm_fixtures import reply

    monkeypatch.setattr(pipeline, "enqueue_summary", lambda summary_id: None)
    settings.ASR_UNCERTAIN_BELOW = 0.0
    loop = "A candle sits on the stove and the stove and the stove and the stove and the stove."
    fake_llm.push(reply("A candle sits on the stove. I removed the filler words."), reply(loop))
    llm = LLMClient(fake_llm.url, "test", "fake-llm", 2.0, max_retries=0)
    plain = [(w.replace("<b>", "").replace("</b>", ""), p) for w, p in SAID]
    _transcribe_and_clean(submitted, plain, client=llm)
    client.force_login(cast.reviewer)
    page = client.get(f"/captions/review/{submitted.campaign_id}/").content.decode()
    assert "Flagged: the LLM edit was rejected; the rule-cleaned text is shown." in page
    assert "attempt 1: commentary: &#x27;I removed&#x27;" in page
    assert "attempt 2: repetition loop" in page
    assert "A candle sits on the stove." in page and 'class="uncertain"' not in page


def test_the_api_says_when_the_local_llm_is_still_converting(
    cast, api_as, submitted: Recording, settings
) -> None:
    """The LLM server's /health while it converts its weights (the real server, bound
    before any model is loaded) reaches the annotator as a note with the progress."""
    import threading

    from django.core.cache import cache

    from model_service.serve import loading
    from model_service.serve.server import ModelServer, ServeSettings

    progress = loading.LoadProgress()
    progress.stage(loading.CONVERTING, total=272, unit="tensors")
    progress.advance(40)
    server = ModelServer.loading(("127.0.0.1", 0), ServeSettings("m", "llm"), progress)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.OPENAI_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
        settings.CAPTION_LLM = "on"
        cache.clear()
        Recording.objects.filter(pk=submitted.pk).update(status="transcribed")
        url = f"/api/v1/captions/recordings/{submitted.pk}/"
        note = api_as(cast.owner).get(url).json()["processing_note"]
        assert "starting for the first time (converting GGUF (one-time): weights, " in note
        assert "40/272 tensors, " in note and "s so far" in note and "150 s" in note
        progress.stage(loading.LOADING)
        cache.clear()
        note = api_as(cast.owner).get(url).json()["processing_note"]
        assert note.startswith("The language model is loading (loading the weights, ")
        settings.CAPTION_LLM = "auto"  # rules only with the bundled model: nothing to wait for
        assert api_as(cast.owner).get(url).json()["processing_note"] is None
    finally:
        server.shutdown()
        server.close()
        cache.clear()
