"""The capture page's flow in real Chromium: pause and resume, skip with a reason, the
campaign's name and progress, the processing stages, and a phone-sized screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator_app.captions.models import Recording
from annotator_app.work.models import Assignment
from tests.e2e import test_capture
from tests.e2e.conftest import assert_clean
from tests.e2e.test_capture import WAIT_MS, _stored_takes, cap_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The capture tests' fixtures: a Chromium with a fake microphone, a logged-in page, speech.
mic_browser = test_capture.mic_browser
open_page = test_capture.open_page
speech_wav = test_capture.speech_wav


def _timer(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.locator("[data-timer]").text_content())


def test_pause_and_resume_within_one_take_counts_spoken_time_only(  # type: ignore[no-untyped-def]
    mic_browser, open_page, cast, speech_wav: Path
) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=2)
    page, problems = open_page(mic_browser(speech_wav), "owner", "pw-owner-123")
    expect(page.locator("[data-campaign-name]")).to_have_text("e2e capture")
    expect(page.locator("[data-capture-progress]")).to_contain_text(
        "You have described 0 images here; the campaign still wants 1 more."
    )
    pause = page.get_by_role("button", name="Pause")
    expect(pause).to_be_disabled()
    page.get_by_role("button", name="Start recording").click()
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:02'", timeout=WAIT_MS
    )
    pause.click()
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_enabled()
    expect(page.locator("[data-timer-state]")).to_contain_text("paused")
    held = _timer(page)
    page.wait_for_timeout(2500)  # speech goes on in the fake microphone; the take does not
    assert _timer(page) == held
    resume.click()
    expect(page.get_by_role("button", name="Pause")).to_be_enabled()
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:05'", timeout=WAIT_MS
    )
    page.keyboard.press("p")  # P pauses too, and Stop ends a paused take
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    spoken = _timer(page)
    page.get_by_role("button", name="Stop recording").click()
    submit = page.get_by_role("button", name="Submit description")
    expect(submit).to_be_enabled()  # the minimum (4 s) is met by spoken time
    submit.click()

    status = page.get_by_role("status")
    expect(status).to_contain_text("Processing status: Stored", timeout=WAIT_MS)
    stages = page.get_by_role("list", name="Processing stages")
    expect(stages).to_be_visible()
    expect(stages.locator("[data-stage='uploaded']")).to_have_attribute("data-state", "done")
    expect(stages.locator("[aria-current='step']")).to_have_text("Transcribing")
    expect(page.locator("[data-estimate]")).to_contain_text("Transcribing")

    recording = Recording.objects.get()
    minutes, seconds = spoken.split(":")
    said = int(minutes) * 60 + int(seconds)
    # One file, one take; the server counted its samples: the pause is not in it. The timer
    # counts from the click, the encoder starts a few packets later: a little under is fine.
    assert said - 0.5 <= recording.duration_seconds <= said + 1.5, (
        spoken,
        recording.duration_seconds,
    )
    assert _stored_takes(page) == 0
    assert_clean(page, problems)


def test_skip_needs_a_reason_and_frees_the_item(  # type: ignore[no-untyped-def]
    mic_browser, open_page, cast, speech_wav: Path
) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=2)
    page, problems = open_page(mic_browser(speech_wav), "owner", "pw-owner-123")
    assignment_id = int(page.locator("[data-capture]").get_attribute("data-assignment-id") or 0)
    page.get_by_role("button", name="Skip", exact=True).click()
    page.get_by_role("button", name="Confirm skip").click()  # no reason chosen: the form says so
    assert page.locator("[data-skip-form]").evaluate("form => form.checkValidity()") is False
    page.get_by_label("Another reason:").check()
    page.get_by_role("button", name="Confirm skip").click()  # "another", left empty
    expect(page.get_by_role("alert")).to_contain_text("Say why you skip this image")
    assert Assignment.objects.get(pk=assignment_id).status == "leased"

    page.get_by_label("Reason", exact=True).fill("The text on the sign is too small")
    page.get_by_role("button", name="Confirm skip").click()
    expect(page.get_by_role("status")).to_contain_text("Image skipped")
    skipped = Assignment.objects.get(pk=assignment_id)
    assert skipped.status == "skipped"
    assert skipped.skip_reason == "The text on the sign is too small"
    assert skipped.item.open_slots == 1  # the slot went back for others

    page.get_by_role("link", name="Describe the next image").click()
    following = int(page.locator("[data-capture]").get_attribute("data-assignment-id") or 0)
    assert following != assignment_id
    assert Assignment.objects.get(pk=following).item_id != skipped.item_id
    # The skipped image still wants a description, from someone else.
    expect(page.locator("[data-capture-progress]")).to_contain_text(
        "the campaign still wants 1 more"
    )
    assert_clean(page, problems)


def test_on_a_phone_the_controls_sit_under_the_image_without_scrolling(  # type: ignore[no-untyped-def]
    mic_browser, open_page, cast, speech_wav: Path
) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=1)
    page, problems = open_page(
        mic_browser(speech_wav),
        "owner",
        "pw-owner-123",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    start = page.get_by_role("button", name="Start recording")
    expect(start).to_be_visible()
    image = page.locator("[data-zoom-viewport]").bounding_box()
    for control in (
        start,
        page.get_by_role("button", name="Pause"),
        page.get_by_role("button", name="Submit description"),
        page.get_by_role("button", name="Skip", exact=True),
    ):
        box = control.bounding_box()
        assert box is not None and image is not None
        assert box["y"] >= image["y"] + image["height"], "the control is above the image"
        assert box["y"] + box["height"] <= 844, f"scroll needed to reach {box}"
    assert image is not None and image["height"] >= 200  # the image is still usable
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    assert page.evaluate("window.scrollY") == 0
    start.tap()
    expect(page.get_by_role("button", name="Stop recording")).to_be_enabled()
    # Hold the take a second, so the player below gets audio (a take stopped before its
    # first chunk leaves an empty file, whose range request Chromium logs as an error).
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:01'", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Stop recording").tap()
    expect(page.locator("audio[data-playback]")).to_be_visible()
    assert_clean(page, problems)
