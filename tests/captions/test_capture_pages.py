"""The capture and history pages, and overlap 3 through the upload path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.captions.guidance import GUIDING_QUESTIONS
from annotator_app.captions.models import Recording
from annotator_app.work.models import WorkItem
from annotator_app.work.services import assignment_next
from tests.captions.capture_helpers import cap_campaign, good_audio, lease, upload

pytestmark = pytest.mark.django_db


def test_capture_page_shows_the_leased_image_questions_and_controls(
    cast, capture_campaign, client
) -> None:
    client.force_login(cast.owner)
    page = client.get("/captions/capture/")
    assert page.status_code == 200
    html = page.content.decode()
    assignment = lease(cast.owner)  # the same lease the page got
    assert f'data-assignment-id="{assignment.pk}"' in html
    assert 'data-min-seconds="4"' in html and 'data-max-seconds="8"' in html
    assert 'data-upload-url="/api/v1/captions/recordings/"' in html
    heartbeat = f"/api/v1/work/assignments/{assignment.pk}/heartbeat/"
    assert f'data-heartbeat-url="{heartbeat}"' in html
    assert client.post(heartbeat, {"active_seconds": 30}).status_code == 200
    assert f'src="/media/{assignment.item.image.storage_key}"' in html
    for question in GUIDING_QUESTIONS:
        assert question in html
    assert "Mention every sign." in html  # the campaign's guidelines
    for name in ("Start recording", "Stop recording", "Submit description", "Record again"):
        assert f">{name}</button>" in html
    assert re.search(r"<audio controls[^>]*data-playback", html)
    # Strict CSP: no inline scripts or style attributes.
    assert " style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    # A reload gets the same item back.
    assert (
        f'data-assignment-id="{assignment.pk}"' in client.get("/captions/capture/").content.decode()
    )


def test_capture_page_says_when_there_is_nothing_to_do(cast, client, db) -> None:
    client.force_login(cast.owner)
    page = client.get("/captions/capture/")
    assert page.status_code == 200 and b"Nothing to describe right now" in page.content
    client.logout()
    assert client.get("/captions/capture/").status_code == 302


def test_history_lists_only_ones_own_descriptions(
    cast, api_as, capture_campaign, capture_media: Path, client
) -> None:
    mine = lease(cast.owner)
    theirs = lease(cast.other)
    upload(api_as(cast.owner), mine.pk, good_audio())
    upload(api_as(cast.other), theirs.pk, good_audio())
    own, other = (
        Recording.objects.get(annotator=cast.owner),
        Recording.objects.get(annotator=cast.other),
    )
    client.force_login(cast.owner)
    html = client.get("/captions/history/").content.decode()
    # The audio plays from the seekable copy made at upload.
    assert f"/media/{own.playback_key}" in html and "Stored" in html
    assert f"/media/{other.playback_key}" not in html
    client.force_login(cast.other)
    assert f"/media/{own.playback_key}" not in client.get("/captions/history/").content.decode()


def test_overlap_three_collects_three_descriptions_from_three_annotators(
    cast, api_as, capture_media: Path
) -> None:
    campaign = cap_campaign(n_images=1, tag="overlap", overlap=3)
    third = user_ensure(username="third", password="pw-third-123", role=Role.ANNOTATOR)[0]
    fourth = user_ensure(username="fourth", password="pw-fourth-123", role=Role.ANNOTATOR)[0]
    for user in (cast.owner, cast.other, third):
        assignment = lease(user)
        assert upload(api_as(user), assignment.pk, good_audio()).status_code == 201
        # Having described it, the same person is never offered that image again.
        assert assignment_next(user=user, kind="cap") is None
    assert assignment_next(user=fourth, kind="cap") is None  # all three slots are used
    recordings = Recording.objects.filter(campaign=campaign)
    assert recordings.count() == 3
    assert len({r.annotator_id for r in recordings}) == 3
    assert len({r.image_id for r in recordings}) == 1
    item = WorkItem.objects.get(campaign=campaign)
    assert (item.open_slots, item.done_count) == (0, 3)
