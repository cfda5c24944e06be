"""A reviewer reviews a spoken description in Chromium: listens, reads, rejects with a reason."""

from __future__ import annotations

import pytest

from tests.e2e.test_login_pages import _log_in, _open_page, _violations

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
        _log_in(page, live_server.url, "rev", "pw-rev-123")
        page.get_by_role("link", name="Review spoken descriptions").click()
        page.get_by_role("link", name="e2e capture").click()
        audio_url = page.locator("audio").get_attribute("src")
        assert audio_url == f"/media/{recording.storage_key}"
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
        _log_in(page, live_server.url, "owner", "pw-owner-123")
        page.get_by_role("link", name="Your work and review notes").click()
        assert page.get_by_text("Please also say what the sign reads.").is_visible()
        assert page.get_by_role("link", name="Review spoken descriptions").count() == 0
    finally:
        context.close()
