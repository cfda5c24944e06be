"""The work API: every endpoint with the owner, the attacker and the higher roles."""

from __future__ import annotations

import pytest

from annotator_app.work.models import Assignment, AssignmentStatus, Campaign, WorkItem
from annotator_app.work.services import assignment_next, assignment_submit
from tests.work.conftest import make_campaign, make_images

pytestmark = pytest.mark.django_db
API = "/api/v1/work"


@pytest.fixture
def leased(cast, campaign):  # type: ignore[no-untyped-def]
    """The owner's live lease on the fixture campaign."""
    assignment = assignment_next(user=cast.owner)
    assert assignment is not None
    return assignment


@pytest.fixture
def submitted(cast, leased):  # type: ignore[no-untyped-def]
    return assignment_submit(assignment=leased)


def test_next_returns_the_same_lease_on_reload(cast, campaign, api_as):
    client = api_as(cast.owner)
    first = client.post(f"{API}/next/", {}, format="json")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["status"] == "leased" and body["campaign"]["id"] == campaign.pk
    assert body["image_url"].endswith(".png")
    again = client.post(f"{API}/next/", {"kind": "cap"}, format="json")
    assert again.json()["id"] == body["id"]


def test_next_answers_204_when_nothing_is_left(cast, api_as):
    make_campaign(1, "solo")
    assert api_as(cast.other).post(f"{API}/next/", {}, format="json").status_code == 200
    assert api_as(cast.owner).post(f"{API}/next/", {}, format="json").status_code == 204


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"kind": "video"}, "kind", "not a valid choice"),
        ({"campaign": 999999}, "campaign", "no active campaign"),
        ({"campaign": "x"}, "campaign", "valid integer"),
    ],
)
def test_next_bad_input(cast, campaign, api_as, payload, field, words):
    response = api_as(cast.owner).post(f"{API}/next/", payload, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field])
    assert not Assignment.objects.exists()


def test_owner_moves_their_lease(cast, leased, api_as):
    client = api_as(cast.owner)
    beat = client.post(
        f"{API}/assignments/{leased.pk}/heartbeat/", {"active_seconds": 12}, format="json"
    )
    assert beat.status_code == 200 and beat.json()["active_seconds"] == 12
    bad = client.post(
        f"{API}/assignments/{leased.pk}/heartbeat/", {"active_seconds": -5}, format="json"
    )
    assert bad.status_code == 400 and "active_seconds" in bad.json()
    long = client.post(f"{API}/assignments/{leased.pk}/skip/", {"reason": "x" * 2001})
    assert long.status_code == 400 and "reason" in long.json()
    skip = client.post(f"{API}/assignments/{leased.pk}/skip/", {"reason": " Blurry image "})
    assert skip.status_code == 200 and skip.json()["status"] == "skipped"
    assert skip.json()["skip_reason"] == "Blurry image"
    again = client.post(f"{API}/assignments/{leased.pk}/skip/")
    assert again.status_code == 400 and "skipped" in again.json()["detail"]


def test_release_deletes_the_lease(cast, leased, api_as):
    assert api_as(cast.owner).post(f"{API}/assignments/{leased.pk}/release/").status_code == 204
    assert not Assignment.objects.filter(pk=leased.pk).exists()
    assert WorkItem.objects.get(pk=leased.item_id).open_slots == 1


@pytest.mark.parametrize("move", ["heartbeat", "skip", "release"])
def test_attacker_cannot_touch_anothers_assignment(cast, leased, api_as, move):
    for attacker in (cast.other, cast.reviewer, cast.admin):
        response = api_as(attacker).post(f"{API}/assignments/{leased.pk}/{move}/")
        assert response.status_code == 404, (attacker.username, response.content)
    assert api_as(None).post(f"{API}/assignments/{leased.pk}/{move}/").status_code in (401, 403)
    after = Assignment.objects.get(pk=leased.pk)
    assert after.status == AssignmentStatus.LEASED and after.heartbeat_at == leased.heartbeat_at


def test_assignment_detail_owner_and_reviewers_only(cast, leased, api_as):
    url = f"{API}/assignments/{leased.pk}/"
    assert api_as(cast.owner).get(url).status_code == 200
    assert api_as(cast.other).get(url).status_code == 404
    assert api_as(cast.reviewer).get(url).status_code == 200
    assert api_as(None).get(url).status_code in (401, 403)


def test_history_shows_only_own_work_with_reasons(cast, submitted, api_as):
    reviewer = api_as(cast.reviewer)
    verdict = reviewer.post(
        f"{API}/assignments/{submitted.pk}/verdict/",
        {"accept": False, "reason": "describe the background too"},
        format="json",
    )
    assert verdict.status_code == 200, verdict.content
    mine = api_as(cast.owner).get(f"{API}/history/").json()
    assert [r["review_reason"] for r in mine["results"]] == ["describe the background too"]
    assert mine["results"][0]["status"] == "rejected"
    assert api_as(cast.other).get(f"{API}/history/").json()["count"] == 0


def test_verdict_permissions(cast, submitted, api_as):
    url = f"{API}/assignments/{submitted.pk}/verdict/"
    for attacker in (cast.owner, cast.other):
        response = api_as(attacker).post(url, {"accept": True}, format="json")
        assert response.status_code == 403
    assert api_as(None).post(url, {"accept": True}, format="json").status_code in (401, 403)
    # a reviewer not listed on a campaign that lists reviewers does not see it
    outsider = type(cast.reviewer).objects.create_user(
        "rev2", password="pw-rev2-123", role="reviewer"
    )
    Campaign.objects.get(pk=submitted.item.campaign_id).reviewers.set([outsider])
    assert api_as(cast.reviewer).post(url, {"accept": True}, format="json").status_code == 404
    assert Assignment.objects.get(pk=submitted.pk).status == AssignmentStatus.SUBMITTED
    ok = api_as(outsider).post(url, {"accept": True}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"
    twice = api_as(cast.admin).post(url, {"accept": False, "reason": "x"}, format="json")
    assert twice.status_code == 400 and "accepted" in twice.json()["detail"]


def test_reject_needs_a_reason(cast, submitted, api_as):
    url = f"{API}/assignments/{submitted.pk}/verdict/"
    response = api_as(cast.reviewer).post(url, {"accept": False}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["detail"]
    response = api_as(cast.reviewer).post(url, {"reason": "x"}, format="json")
    assert response.status_code == 400 and "accept" in response.json()
    assert Assignment.objects.get(pk=submitted.pk).status == AssignmentStatus.SUBMITTED


def test_review_queue_and_bulk_accept(cast, submitted, api_as):
    cid = submitted.item.campaign_id
    queue = api_as(cast.reviewer).get(f"{API}/campaigns/{cid}/review-queue/")
    assert queue.status_code == 200
    assert [(r["id"], r["annotator"]) for r in queue.json()["results"]] == [(submitted.pk, "owner")]
    for attacker in (cast.owner, cast.other):
        assert api_as(attacker).get(f"{API}/campaigns/{cid}/review-queue/").status_code == 403
    elsewhere = make_campaign(1, "else")
    stray = assignment_next(user=cast.other, campaign=elsewhere)
    assert stray is not None
    url = f"{API}/campaigns/{cid}/accept-bulk/"
    bad = api_as(cast.reviewer).post(url, {"assignment_ids": [stray.pk]}, format="json")
    assert bad.status_code == 400 and str(stray.pk) in str(bad.json()["assignment_ids"])
    assert api_as(cast.owner).post(url, {"assignment_ids": [submitted.pk]}).status_code == 403
    ok = api_as(cast.reviewer).post(url, {"assignment_ids": [submitted.pk]}, format="json")
    assert ok.json() == {"accepted": 1}
    assert Assignment.objects.get(pk=submitted.pk).status == AssignmentStatus.ACCEPTED


def test_progress_for_reviewers_and_admins_only(cast, leased, api_as):
    from annotator_app.work.services import assignment_heartbeat

    submitted = assignment_submit(assignment=leased, active_seconds=1800)
    cid = submitted.item.campaign_id
    assignment_heartbeat(assignment=assignment_next(user=cast.other))  # type: ignore[arg-type]
    url = f"{API}/campaigns/{cid}/progress/"
    for attacker in (cast.owner, cast.other):
        assert api_as(attacker).get(url).status_code == 403
    body = api_as(cast.admin).get(url).json()
    assert body["items"] == 3 and body["awaiting_review"] == 1 and body["in_progress"] == 1
    assert body["remaining"] == 1 and body["accepted"] == 0
    assert body["annotators"] == [
        {
            "annotator_id": cast.owner.pk,
            "username": "owner",
            "items": 1,
            "accepted": 0,
            "rejected": 0,
            "active_seconds": 1800,
            "items_per_hour": 2.0,
        }
    ]
    assert body["completions_by_day"][-1]["count"] == 1
    mine = api_as(cast.owner).get(f"{API}/progress/me/").json()
    assert mine["items"] == 1 and mine["items_per_hour"] == 2.0


def test_campaign_list_for_annotators(cast, api_as):
    make_campaign(1, "on")
    make_campaign(1, "off", active=False)
    names = [c["name"] for c in api_as(cast.owner).get(f"{API}/campaigns/").json()]
    assert names == ["campaign on"]
    everything = api_as(cast.admin).get(f"{API}/campaigns/?all=1").json()
    assert {c["name"] for c in everything} == {"campaign on", "campaign off"}
    assert api_as(None).get(f"{API}/campaigns/").status_code in (401, 403)


def test_admin_creates_and_edits_campaigns(cast, api_as):
    from annotator_app.catalog.models import Topic

    images = make_images(4, "api")
    topic = Topic.objects.create(name="Dogs", slug="dogs")
    images[3].topics.add(topic)
    payload = {
        "name": "Pointing round",
        "kind": "points",
        "label_prompts": ["dog", "ball"],
        "image_ids": [images[0].pk, images[1].pk],
        "topics": ["dogs"],
        "overlap": 2,
        "reviewers": ["rev"],
    }
    created = api_as(cast.admin).post(f"{API}/campaigns/", payload, format="json")
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    assert WorkItem.objects.filter(campaign_id=cid).count() == 3
    assert set(WorkItem.objects.filter(campaign_id=cid).values_list("open_slots", flat=True)) == {2}
    edited = api_as(cast.admin).patch(
        f"{API}/campaigns/{cid}/", {"overlap": 3, "image_ids": [images[2].pk]}, format="json"
    )
    assert edited.status_code == 200, edited.content
    items = WorkItem.objects.filter(campaign_id=cid)
    assert sorted(items.values_list("image_id", flat=True)) == sorted([images[2].pk, images[3].pk])
    assert set(items.values_list("open_slots", flat=True)) == {3}


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"kind": "cap", "overlap": 0}, "overlap", "greater than or equal to 1"),
        ({"kind": "cap", "min_seconds": 120, "max_seconds": 60}, "min_seconds", "max_seconds"),
        ({"kind": "points"}, "label_prompts", "at least one label"),
        ({"kind": "cap", "label_prompts": ["dog"]}, "label_prompts", "only points"),
        ({"kind": "ama", "topics": ["nope"]}, "topics", "unknown topics: nope"),
        ({"kind": "ama", "image_ids": [987654]}, "image_ids", "unknown images: 987654"),
        ({"kind": "ama", "reviewers": ["owner"]}, "reviewers", "not reviewers: owner"),
        ({"kind": "paint"}, "kind", "not a valid choice"),
        ({"kind": "cap", "name": "   "}, "name", "blank"),
    ],
)
def test_campaign_bad_input(cast, api_as, payload, field, words):
    body = {"name": "Bad one", **payload}
    response = api_as(cast.admin).post(f"{API}/campaigns/", body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field]), response.json()
    assert not Campaign.objects.exists()


def test_campaign_edit_validates_the_merged_settings(cast, campaign, api_as):
    url = f"{API}/campaigns/{campaign.pk}/"
    response = api_as(cast.admin).patch(url, {"min_seconds": 900}, format="json")
    assert response.status_code == 400 and "max_seconds" in str(response.json()["min_seconds"])
    campaign.refresh_from_db()
    assert campaign.min_seconds == 60


def test_only_admins_create_or_edit(cast, campaign, api_as):
    for attacker in (cast.owner, cast.reviewer, None):
        created = api_as(attacker).post(
            f"{API}/campaigns/", {"name": "x", "kind": "cap"}, format="json"
        )
        assert created.status_code in (401, 403)
        edited = api_as(attacker).patch(
            f"{API}/campaigns/{campaign.pk}/", {"priority": 9}, format="json"
        )
        assert edited.status_code in (401, 403)
    assert Campaign.objects.count() == 1 and Campaign.objects.get().priority == 0


def test_reviewer_not_listed_on_a_campaign_sees_nothing_of_it(cast, submitted, api_as):
    from annotator_app.accounts.models import User

    listed = User.objects.create_user("rev-listed", password="pw-listed-123", role="reviewer")
    campaign = Campaign.objects.get(pk=submitted.item.campaign_id)
    campaign.reviewers.set([listed])
    cid = campaign.pk
    unlisted = api_as(cast.reviewer)
    for url in (
        f"{API}/campaigns/{cid}/review-queue/",
        f"{API}/campaigns/{cid}/progress/",
        f"{API}/assignments/{submitted.pk}/",
    ):
        assert unlisted.get(url).status_code == 404, url
        assert api_as(listed).get(url).status_code == 200, url
    bulk = unlisted.post(
        f"{API}/campaigns/{cid}/accept-bulk/", {"assignment_ids": [submitted.pk]}, format="json"
    )
    assert bulk.status_code == 404
    assert Assignment.objects.get(pk=submitted.pk).status == AssignmentStatus.SUBMITTED
