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
    assert f"/media/{submitted.storage_key}" in page and "owner" in page
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
    assert verdict(client, submitted, "reject", "x" * 2001).status_code == 400
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
