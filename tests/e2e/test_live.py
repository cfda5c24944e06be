"""P12 live guidance in real Chromium with a fake microphone playing espeak-ng speech."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from annotator_app.captions.models import Recording
from tests.captions.audio_fixtures import espeak_wav
from tests.captions.pipeline_helpers import purge_queues, worker
from tests.e2e.conftest import assert_clean
from tests.e2e.test_capture import cap_campaign, mic_browser, open_page  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A number ("two") for "objects and counts", text read out ("the text on the sign says
# ...") for "text"; tiny.en hears these words reliably from espeak-ng.
SPOKEN = (
    "This is a photo of a bakery. There are two people walking past the window. "
    "The text on the sign says fresh bread."
)
# The machine may be loaded: these bound how long a test waits, they are not speed goals.
LIVE_WAIT_MS = 180_000
WAIT_MS = 30_000


@pytest.fixture
def spoken_wav(tmp_path: Path) -> Path:
    return espeak_wav(tmp_path / "spoken.wav", SPOKEN)


def live_campaign() -> Any:
    from annotator_app.work.services import campaign_update

    campaign = cap_campaign(n_images=1)
    # Long enough that the take is still recording while the live text arrives.
    return campaign_update(campaign=campaign, live_guidance=True, max_seconds=600)


@pytest.fixture(autouse=True)
def _no_live_state() -> Any:
    from annotator_app.captions.live import _redis

    for key in _redis().scan_iter("live:*"):
        _redis().delete(key)
    yield
    purge_queues()


def test_the_transcript_appears_while_recording_and_the_questions_tick(
    mic_browser,  # noqa: F811
    open_page,  # noqa: F811
    cast,
    spoken_wav: Path,
) -> None:
    from playwright.sync_api import expect

    live_campaign()
    page, problems = open_page(mic_browser(spoken_wav), "owner", "pw-owner-123")
    live = page.get_by_role("region", name="Live guidance")
    expect(live).to_contain_text("What are the objects and their counts?")
    counts = live.locator("li[data-live-key='objects_counts']")
    text = live.locator("li[data-live-key='text']")
    expect(counts).to_have_attribute("data-covered", "false")

    with worker(queues="live"):
        page.get_by_role("button", name="Start recording").click()
        stop = page.get_by_role("button", name="Stop recording")
        expect(stop).to_be_enabled()
        transcript = live.locator("[data-live-transcript]")
        expect(transcript).to_contain_text("people", timeout=LIVE_WAIT_MS)
        expect(stop).to_be_enabled()  # still recording: the text came while speaking
        expect(counts).to_have_attribute("data-covered", "true", timeout=LIVE_WAIT_MS)
        expect(counts).to_have_class("covered")
        expect(text).to_have_attribute("data-covered", "true", timeout=LIVE_WAIT_MS)
        expect(stop).to_be_enabled()
        # Past the minimum (4 s), the hint names a question still open.
        hint = live.locator("[data-live-hint]")
        expect(hint).to_contain_text("Still open:", timeout=WAIT_MS)
        expect(hint).to_contain_text("What is in the background?")
        assert "What are the objects and their counts?" not in (hint.text_content() or "")
        stop.click()
        submit = page.get_by_role("button", name="Submit description")
        expect(submit).to_be_enabled()
        submit.click()
        expect(page.get_by_role("status")).to_contain_text("Processing status", timeout=WAIT_MS)

    recording = Recording.objects.get()
    assert recording.live_coverage is not None
    covered = {q["key"] for q in recording.live_coverage["questions"] if q["covered"]}
    assert {"objects_counts", "text"} <= covered, recording.live_coverage
    assert_clean(page, problems)


def test_with_the_live_path_down_recording_and_submit_are_unaffected(
    mic_browser,  # noqa: F811
    open_page,  # noqa: F811
    cast,
    spoken_wav: Path,
) -> None:
    from playwright.sync_api import expect

    live_campaign()
    page, problems = open_page(mic_browser(spoken_wav), "owner", "pw-owner-123")
    live = page.get_by_role("region", name="Live guidance")
    # The live endpoint is down (no worker either): every live request fails.
    page.route("**/api/v1/captions/live/**", lambda route: route.fulfill(status=503, body="{}"))
    page.get_by_role("button", name="Start recording").click()
    expect(live.locator("[data-live-status]")).to_contain_text(
        "Live transcript paused", timeout=WAIT_MS
    )
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:06'", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Stop recording").click()
    submit = page.get_by_role("button", name="Submit description")
    expect(submit).to_be_enabled()
    expect(page.locator("audio[data-playback]")).to_be_visible()
    submit.click()
    expect(page.get_by_role("status")).to_contain_text("Processing status: Stored", timeout=WAIT_MS)
    recording = Recording.objects.get()
    assert recording.duration_seconds >= 5.0 and recording.live_coverage is None
    # Chromium logs each refused live request; nothing else may go wrong.
    assert_clean(page, [p for p in problems if "503" not in p])
