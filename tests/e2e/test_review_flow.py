"""Reviewing spoken descriptions in real Chromium: seeking in the audio, the keyboard,
accept all shown, a refused verdict shown as an error, and the annotator's view after."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.test_login_pages import _open_page, _violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AUDIO_READY = """(index) => {
  const audio = document.querySelectorAll('[data-review-item] audio')[index];
  return audio.readyState >= 1 && Number.isFinite(audio.duration);
}"""


def _seek(page: Any, index: int, seconds: float) -> float:
    """Seek the index-th description's audio and return where it landed."""
    return float(
        page.evaluate(
            """([index, seconds]) => new Promise((resolve, reject) => {
              const audio = document.querySelectorAll('[data-review-item] audio')[index];
              audio.addEventListener('seeked', () => resolve(audio.currentTime), {once: true});
              audio.addEventListener('error', () => reject(audio.error), {once: true});
              audio.currentTime = seconds;
            })""",
            [index, seconds],
        )
    )


def _submitted(cast: Any, api_as: Any, n: int) -> list[Any]:
    from annotator_app.captions.models import Recording
    from tests.captions.browser_audio import chrome_like_webm
    from tests.captions.capture_helpers import lease, upload
    from tests.e2e.test_capture import cap_campaign  # over real stored images

    cap_campaign(n_images=n)
    for seconds in range(5, 5 + n):  # as Chrome records it: no duration, no seek index
        answer = upload(api_as(cast.owner), lease(cast.owner).pk, chrome_like_webm(seconds))
        assert answer.status_code == 201, answer.content
    return list(Recording.objects.order_by("assignment__submitted_at", "id"))


def test_the_audio_shows_its_length_and_seeks(browser, live_server, cast, api_as) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    recordings = _submitted(cast, api_as, 1)
    recording = recordings[0]
    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "rev", "pw-rev-123")
        page.goto(f"{live_server.url}/captions/review/{recording.campaign_id}/")
        expect(page.locator("[data-duration]")).to_have_text(f"{recording.duration_seconds:.1f} s")
        page.wait_for_function(AUDIO_READY, arg=0, timeout=30_000)
        duration = page.evaluate("document.querySelector('[data-review-item] audio').duration")
        assert abs(duration - recording.duration_seconds) < 0.25, duration
        landed = _seek(page, 0, 3.0)
        assert abs(landed - 3.0) < 0.1, landed
        landed = _seek(page, 0, 1.2)  # and back
        assert abs(landed - 1.2) < 0.1, landed
        # The original upload, as the browser sent it, has no length a player can show:
        # the copy is what makes the difference.
        original = page.evaluate(
            """(url) => new Promise((resolve) => {
              const audio = new Audio();
              audio.addEventListener('loadedmetadata', () => resolve(String(audio.duration)));
              audio.src = url;
            })""",
            f"/media/{recording.storage_key}",
        )
        assert original == "Infinity"
        # The image is large and zooms.
        box = page.locator("[data-zoom-viewport]").bounding_box()
        assert box is not None and box["height"] >= 300
        image = page.locator("[data-zoom-target]")
        before = image.evaluate("img => img.getBoundingClientRect().width")
        page.get_by_role("button", name="Zoom in").click()
        assert image.evaluate("img => img.getBoundingClientRect().width") > before * 1.4
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()


def test_keyboard_review_bulk_accept_errors_and_the_annotators_view(  # type: ignore[no-untyped-def]
    browser, live_server, cast, api_as
) -> None:
    from playwright.sync_api import expect

    from annotator_app.work.models import Assignment

    recordings = _submitted(cast, api_as, 4)
    ids = [r.assignment_id for r in recordings]
    queue = f"{live_server.url}/captions/review/{recordings[0].campaign_id}/"
    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "rev", "pw-rev-123")
        page.goto(queue)
        items = page.locator("[data-review-item]")
        expect(items).to_have_count(4)
        expect(items.nth(0)).to_have_attribute("aria-current", "true")
        page.keyboard.press("j")
        page.keyboard.press("j")
        expect(items.nth(2)).to_have_attribute("aria-current", "true")
        page.keyboard.press("k")
        expect(items.nth(1)).to_have_attribute("aria-current", "true")
        expect(items.nth(0)).not_to_have_attribute("aria-current", "true")

        # R goes to the reason; rejecting without one is stopped, next to the field.
        page.keyboard.press("r")
        reason = items.nth(1).get_by_label("Reason")
        expect(reason).to_be_focused()
        page.keyboard.press("Enter")
        expect(items.nth(1).get_by_role("alert")).to_contain_text("Say why you reject")
        assert Assignment.objects.get(pk=ids[1]).status == "submitted"
        page.keyboard.type("The sign is not mentioned.")
        page.keyboard.press("Enter")
        expect(page.get_by_role("status").first).to_have_text(f"Assignment {ids[1]} rejected.")
        assert Assignment.objects.get(pk=ids[1]).status == "rejected"

        # A accepts the current one (the first, after the reload); a second tab that still
        # shows it gets a refusal that looks like an error.
        stale = context.new_page()
        stale.goto(queue)
        expect(items).to_have_count(3)
        page.keyboard.press("a")
        expect(page.get_by_role("status").first).to_have_text(f"Assignment {ids[0]} accepted.")
        stale.locator("[data-review-item]").first.get_by_role("button", name="Accept").click()
        refusal = stale.get_by_role("alert").filter(has_text=f"Assignment {ids[0]}")
        expect(refusal).to_contain_text("only submitted work can be reviewed")
        expect(refusal).to_have_class("message message-error")
        colour = refusal.evaluate("el => getComputedStyle(el).backgroundColor")
        assert colour == "rgb(253, 236, 234)", colour  # the error red, not the info blue

        # Accept all shown: the two left.
        expect(items).to_have_count(2)
        page.get_by_role("button", name="Accept all 2 shown").click()
        expect(page.get_by_role("status").first).to_have_text("Accepted 2 descriptions.")
        expect(page.get_by_text("Nothing waits for review in this campaign.")).to_be_visible()
        statuses = [Assignment.objects.get(pk=i).status for i in ids]
        assert statuses == ["accepted", "rejected", "accepted", "accepted"]
        assert _violations(page) == [] and problems == [], (_violations(page), problems)
    finally:
        context.close()

    context, page, problems = _open_page(browser)
    try:
        log_in(page, live_server.url, "owner", "pw-owner-123")
        page.goto(f"{live_server.url}/captions/history/")
        verdicts = page.locator("[data-verdict]")
        expect(verdicts.filter(has_text="Rejected: The sign is not mentioned.")).to_have_count(1)
        expect(verdicts.filter(has_text="Accepted")).to_have_count(3)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: no sideways scroll
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert problems == [], problems
    finally:
        context.close()
