"""A reviewer reviews a spoken description in Chromium: listens, reads, rejects with a reason."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.test_login_pages import _open_page, _violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_rejects_a_description_and_the_annotator_sees_why(  # type: ignore[no-untyped-def]
    browser, live_server, cast, api_as
) -> None:
    from annotator_app.captions.models import Recording
    from annotator_app.work.models import Assignment
    from tests.captions.capture_helpers import good_audio, lease, upload
    from tests.e2e.test_capture import cap_campaign  # over real stored images

    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, good_audio()).status_code == 201
    recording = Recording.objects.get(assignment=assignment)

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "rev", "pw-rev-123")
        page.get_by_role("link", name="Review spoken descriptions").click()
        page.get_by_role("link", name="e2e capture").click()
        audio_url = page.locator("audio").get_attribute("src")
        assert audio_url == f"/media/{recording.playback_key}"  # the seekable copy
        heard = page.request.get(f"{live_server.url}{audio_url}")
        assert heard.status == 200 and heard.headers["content-type"] == "audio/webm"
        page.get_by_label("Reason").fill("Please also say what the sign reads.")
        page.get_by_role("button", name="Reject").click()
        assert page.get_by_text(f"Assignment {assignment.pk} rejected.").is_visible()
        assert page.get_by_text("Nothing waits for review in this campaign.").is_visible()
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()
    assert Assignment.objects.get(pk=assignment.pk).status == "rejected"

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "owner", "pw-owner-123")
        page.get_by_role("link", name="Your work and review notes").click()
        assert page.get_by_text("Please also say what the sign reads.").is_visible()
        assert page.get_by_role("link", name="Review spoken descriptions").count() == 0
    finally:
        context.close()


def test_the_reviewer_sees_unsure_words_and_why_a_caption_is_flagged(  # type: ignore[no-untyped-def]
    browser, live_server, cast, api_as, settings, monkeypatch, fake_llm
) -> None:
    from annotator_app.captions import pipeline
    from annotator_app.captions.models import Recording
    from pipelines.llm import LLMClient
    from tests.captions.capture_helpers import good_audio, lease, upload
    from tests.captions.test_review_pages import _transcribe_and_clean
    from tests.e2e.test_capture import cap_campaign
    from tests.llm_fixtures import reply

    monkeypatch.setattr(pipeline, "enqueue_summary", lambda summary_id: None)
    settings.ASR_UNCERTAIN_BELOW = 0.5
    cap_campaign(n_images=1)
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, good_audio()).status_code == 201
    recording = Recording.objects.get(assignment=assignment)
    # The LLM endpoint derails twice (an outside service, scripted): the rules' text stays.
    fake_llm.push(
        reply("Here is my edit. I removed the fillers."), reply("kettle-stove-candle-red")
    )
    llm = LLMClient(fake_llm.url, "test", "fake-llm", 2.0, max_retries=0)
    said = [("Um,", 0.9), ("a", 0.97), ("red", 0.95), ("candle", 0.31), ("is", 0.96),
            ("on", 0.98), ("the", 0.99), ("stove.", 0.88)]  # fmt: skip
    _transcribe_and_clean(recording, said, client=llm)

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "rev", "pw-rev-123")
        page.goto(f"{live_server.url}/captions/review/{recording.campaign_id}/")
        transcript = page.locator("[data-transcript-text]")
        caption = page.locator("[data-caption-text]")
        assert transcript.inner_text() == "Um, a red candle is on the stove."
        assert caption.inner_text() == "A red candle is on the stove."
        for text in (transcript, caption):
            marked = text.locator("mark.uncertain")
            assert marked.all_inner_texts() == ["candle"]
            assert "unsure (0.31)" in (marked.get_attribute("title") or "")
            assert marked.is_visible()
        flags = page.get_by_role("note", name="Caption flags")
        assert flags.is_visible()
        assert "the LLM edit was rejected" in flags.inner_text()
        items = flags.locator("li").all_inner_texts()
        assert any(i.startswith("attempt 1: commentary") for i in items), items
        assert any(i.startswith("attempt 2: word salad") for i in items), items
        assert items[-1] == "uncertain ASR words, listen before accepting: candle"
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()
