"""Who may read and change points: the attacker's requests, each answered 404."""

from __future__ import annotations

import pytest
from django.test import Client

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.points.models import LabelAnnotation, PointsAnnotation
from tests.points.helpers import API, answers, label, lease, points_campaign, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(cast, api_as):  # type: ignore[no-untyped-def]
    campaign = points_campaign(reviewers=[cast.reviewer])
    assignment = lease(cast.owner)
    response = submit(api_as(cast.owner), assignment.pk, answers(red_square=[(10.0, 10.0)]))
    assert response.status_code == 201
    return campaign, assignment, PointsAnnotation.objects.get()


def test_only_the_annotator_the_campaigns_reviewers_and_admins_read_points(
    cast, api_as, stored
) -> None:
    campaign, _, annotation = stored
    url = f"{API}/annotations/{annotation.pk}/"
    for reader in (cast.owner, cast.reviewer, cast.admin):
        response = api_as(reader).get(url)
        assert response.status_code == 200 and response.json()["labels"][0]["count"] == 1
    assert api_as(cast.other).get(url).status_code == 404
    assert api_as(None).get(url).status_code in (401, 403)
    # A reviewer of another campaign does not see them either.
    outsider = user_ensure(username="rev2", password="pw-rev2-123", role=Role.REVIEWER)[0]
    points_campaign(1, "else", reviewers=[outsider])
    assert api_as(outsider).get(url).status_code == 404
    assert api_as(outsider).get(f"{API}/campaigns/{campaign.pk}/agreement/").status_code == 404
    # Lists hold one's own only.
    assert api_as(cast.other).get(f"{API}/annotations/").json()["count"] == 0
    assert api_as(cast.owner).get(f"{API}/annotations/").json()["count"] == 1


def test_another_annotator_cannot_change_or_submit_for_the_owner(cast, api_as, stored) -> None:
    _, _, annotation = stored
    url = f"{API}/annotations/{annotation.pk}/"
    body = {"labels": answers(red_square=[(90.0, 90.0)])}
    for attacker in (cast.other, cast.reviewer, cast.admin):
        assert api_as(attacker).put(url, body, format="json").status_code == 404
    assert api_as(cast.other).delete(url).status_code == 405
    # Submitting for someone else's assignment: 404 as if it did not exist.
    second = lease(cast.owner)
    attack = submit(api_as(cast.other), second.pk, answers())
    assert attack.status_code == 404 and "not found" in attack.json()["detail"]
    assert LabelAnnotation.objects.get(label="red square").points == [{"x": 10.0, "y": 10.0}]
    assert PointsAnnotation.objects.count() == 1


def test_the_owner_amends_until_a_reviewer_decides(cast, api_as, stored) -> None:
    _, assignment, annotation = stored
    url = f"{API}/annotations/{annotation.pk}/"
    client = api_as(cast.owner)
    amended = client.put(url, {"labels": answers(red_square=[(20.0, 30.0)])}, format="json")
    assert amended.status_code == 200, amended.content
    assert LabelAnnotation.objects.get(label="red square").points == [{"x": 20.0, "y": 30.0}]
    bad = client.put(url, {"labels": [label("red square", (150.0, 1.0))]}, format="json")
    assert bad.status_code == 400 and "between 0 and 100" in bad.json()["detail"]
    verdict = api_as(cast.reviewer).post(
        f"/api/v1/work/assignments/{assignment.pk}/verdict/", {"accept": True}, format="json"
    )
    assert verdict.status_code == 200
    late = client.put(url, {"labels": answers()}, format="json")
    assert late.status_code == 409 and "accepted" in late.json()["detail"]
    assert LabelAnnotation.objects.get(label="red square").count == 1


def test_review_pages_are_for_the_campaigns_reviewers(cast, stored) -> None:
    campaign, _, _ = stored
    pages = ["/points/review/", f"/points/review/{campaign.pk}/"]
    for user, code in ((cast.owner, 404), (cast.other, 404), (cast.reviewer, 200)):
        client = Client()
        client.force_login(user)
        assert [client.get(p).status_code for p in pages] == [code, code], user
    outsider = user_ensure(username="rev3", password="pw-rev3-123", role=Role.REVIEWER)[0]
    client = Client()
    client.force_login(outsider)
    assert client.get(pages[1]).status_code == 404
    assert "red square" not in client.get(pages[0]).content.decode()


def test_a_label_with_markup_is_shown_as_text(cast, api_as) -> None:
    points_campaign(1, "xss", collection_method="pointing")
    assignment = lease(cast.owner)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = submit(api_as(cast.owner), assignment.pk, [label(evil, (5.0, 5.0))])
    assert response.status_code == 201
    assert response.json()["labels"][0]["label"] == evil  # JSON carries it as data
    client = Client()
    client.force_login(cast.reviewer)
    campaign_id = assignment.item.campaign_id
    html = client.get(f"/points/review/{campaign_id}/").content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html


def test_verdict_forms_need_the_csrf_token(cast, stored) -> None:
    _, assignment, _ = stored
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.reviewer)
    refused = client.post(f"/points/review/verdict/{assignment.pk}/", {"decision": "accept"})
    assert refused.status_code == 403
    assignment.refresh_from_db()
    assert assignment.status == "submitted"
