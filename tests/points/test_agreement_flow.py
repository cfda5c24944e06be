"""Overlap > 1: agreement is computed and stored once the item's annotations are in."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.points.models import AgreementTotals, ItemAgreement, PointsAnnotation
from annotator_app.points.selectors import label_annotations_for_export
from annotator_app.work.models import AssignmentStatus
from tests.points.helpers import API, answers, lease, points_campaign, submit

pytestmark = pytest.mark.django_db

SQUARES = [(20.0, 20.0), (60.0, 30.0), (40.0, 70.0)]


def _submit_as(api_as: Any, user: Any, campaign: Any, **by_label: Any) -> int:
    assignment = lease(user, campaign)
    response = submit(api_as(user), assignment.pk, answers(**by_label))
    assert response.status_code == 201, response.content
    return int(response.json()["id"])


def _totals(campaign: Any, annotator: Any = None) -> AgreementTotals:
    return AgreementTotals.objects.get(campaign=campaign, annotator=annotator)


def _statuses() -> list[str]:
    return sorted(PointsAnnotation.objects.values_list("assignment__status", flat=True))


def test_agreeing_annotators_are_accepted_and_counted(cast, api_as) -> None:
    campaign = points_campaign(1, "agree", overlap=2)
    _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    assert not ItemAgreement.objects.exists()  # one of two: nothing to compare yet
    assert _statuses() == ["submitted"]
    shifted = [(x + 1.0, y - 1.0) for x, y in SQUARES]
    _submit_as(api_as, cast.other, campaign, red_square=list(reversed(shifted)))
    agreement = ItemAgreement.objects.get()
    assert agreement.status == "agreed" and agreement.compared.count() == 2
    assert [label["agreed"] for label in agreement.labels] == [True, True, True]
    assert _statuses() == ["accepted", "accepted"]
    totals = _totals(campaign)
    assert (totals.items, totals.items_agreed, totals.labels, totals.labels_agreed) == (1, 1, 3, 3)
    assert (totals.pairs, totals.pairs_count_agreed, totals.f1_sum) == (3, 3, 3.0)
    assert _totals(campaign, cast.owner).labels_agreed == 3
    assert label_annotations_for_export(campaign=campaign).count() == 6


def test_disagreement_goes_to_review_where_a_pick_keeps_one_annotation(cast, api_as) -> None:
    campaign = points_campaign(1, "pick", overlap=2)
    mine = _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    theirs = _submit_as(api_as, cast.other, campaign, red_square=SQUARES[:2])
    agreement = ItemAgreement.objects.get()
    assert agreement.status == "disagreed" and _statuses() == ["submitted", "submitted"]
    by_key = {label["key"]: label for label in agreement.labels}
    assert not by_key["red square"]["agreed"] and by_key["giraffe"]["agreed"]
    pair = by_key["red square"]["pairs"][0]
    assert (pair["count_a"], pair["count_b"], pair["matched"]) == (3, 2, 2)
    totals = _totals(campaign)
    assert (totals.items, totals.items_agreed, totals.labels_agreed) == (1, 0, 2)
    assert _totals(campaign, cast.other).pairs_count_agreed == 2

    reviewer = Client()
    reviewer.force_login(cast.reviewer)
    page = reviewer.get(f"/points/review/{campaign.pk}/").content.decode()
    assert "1 waiting" in page and "Pick owner" in page and "Reject other" in page
    # Every annotator's points overlaid, in their own colour.
    assert page.count('<circle class="ann-0"') == 3 and page.count('<circle class="ann-1"') == 2
    # Molmo's text, escaped like any text on the page.
    assert "alt=&quot;red square&quot;&gt;red square&lt;/points&gt; shows a total of 3." in page

    response = reviewer.post(
        f"/points/review/decide/{agreement.pk}/", {"decision": f"pick:{mine}"}, follow=True
    )
    assert f"annotation {mine} chosen" in response.content.decode()
    assert _statuses() == ["accepted", "accepted"]
    assert PointsAnnotation.objects.get(pk=theirs).superseded
    exported = {row.annotation_id for row in label_annotations_for_export(campaign=campaign)}
    assert exported == {mine}
    agreement.refresh_from_db()
    assert agreement.status == "resolved" and agreement.resolved_by == cast.reviewer
    again = reviewer.post(f"/points/review/decide/{agreement.pk}/", {"decision": "accept_all"})
    assert again.status_code == 302
    assert "already decided" in str(
        list(reviewer.get(f"/points/review/{campaign.pk}/").context["messages"])
    )


def test_a_rejection_reopens_the_item_and_the_next_annotation_is_compared_anew(
    cast, api_as
) -> None:
    campaign = points_campaign(1, "reopen", overlap=2)
    third = user_ensure(username="third", password="pw-third-123", role=Role.ANNOTATOR)[0]
    _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    theirs = _submit_as(api_as, cast.other, campaign, red_square=[(90.0, 90.0)])
    agreement = ItemAgreement.objects.get()
    decision = api_as(cast.reviewer).post(
        f"{API}/agreements/{agreement.pk}/decision/",
        {"action": "reject", "annotation": theirs, "reason": "Two squares were missed."},
        format="json",
    )
    assert decision.status_code == 204, decision.content
    agreement.refresh_from_db()
    assert agreement.status == "reopened"
    assert PointsAnnotation.objects.get(pk=theirs).assignment.status == AssignmentStatus.REJECTED
    assert _totals(campaign).items == 1  # the comparison made still counts

    _submit_as(api_as, third, campaign, red_square=SQUARES)
    agreement.refresh_from_db()
    assert agreement.status == "agreed"
    assert set(agreement.compared.values_list("annotator__username", flat=True)) == {
        "owner",
        "third",
    }
    # The first comparison's figures were taken out before the new ones went in.
    totals = _totals(campaign)
    assert (totals.items, totals.items_agreed, totals.labels, totals.labels_agreed) == (1, 1, 3, 3)
    assert _totals(campaign, cast.other).pairs == 0
    assert _totals(campaign, cast.owner).pairs == 3


def test_decisions_refuse_what_makes_no_sense(cast, api_as) -> None:
    campaign = points_campaign(1, "dec", overlap=2, reviewers=[cast.reviewer])
    _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    _submit_as(api_as, cast.other, campaign, red_square=[(90.0, 90.0)])
    agreement = ItemAgreement.objects.get()
    url = f"{API}/agreements/{agreement.pk}/decision/"
    reviewer = api_as(cast.reviewer)
    no_reason = reviewer.post(url, {"action": "reject", "annotation": 1}, format="json")
    assert no_reason.status_code == 400
    stranger = reviewer.post(url, {"action": "pick", "annotation": 987654}, format="json")
    assert stranger.status_code == 400 and "not one of" in stranger.json()["detail"]
    assert api_as(cast.other).post(url, {"action": "accept_all"}, format="json").status_code == 403
    outsider = user_ensure(username="rev9", password="pw-rev9-123", role=Role.REVIEWER)[0]
    points_campaign(1, "other", reviewers=[outsider])
    assert api_as(outsider).post(url, {"action": "accept_all"}, format="json").status_code == 404
    assert ItemAgreement.objects.get().status == "disagreed"
    assert api_as(cast.admin).post(url, {"action": "accept_all"}, format="json").status_code == 204
    assert _statuses() == ["accepted", "accepted"]


def test_the_dashboard_shows_stored_agreement_per_campaign_and_annotator(cast, api_as) -> None:
    campaign = points_campaign(2, "dash", overlap=2)
    _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    _submit_as(api_as, cast.other, campaign, red_square=SQUARES)
    _submit_as(api_as, cast.owner, campaign, red_square=SQUARES)
    _submit_as(api_as, cast.other, campaign, red_square=SQUARES[:1])
    admin = Client()
    admin.force_login(cast.admin)
    html = admin.get("/work/dashboard/").content.decode()
    assert "Pointing agreement" in html
    # 2 images compared, 1 agreed; labels 5 of 6; counts 5 of 6 pairs.
    row = html[html.index(f'?campaign={campaign.pk}">campaign dash</a></td><td>2</td>') :]
    assert row.split("</tr>")[0].count("50.0 %") == 1 and "83.3 %" in row.split("</tr>")[0]
    figures = api_as(cast.reviewer).get(f"{API}/campaigns/{campaign.pk}/agreement/").json()
    assert figures["campaign"]["items"] == 2 and figures["campaign"]["awaiting_review"] == 1
    assert [a["name"] for a in figures["annotators"]] == ["other", "owner"]
    assert figures["annotators"][0]["labels_agreed_pct"] == 83.3


@pytest.mark.django_db(transaction=True)
def test_two_last_submissions_at_once_compare_the_item_exactly_once(cast) -> None:
    from annotator_app.points.services import points_submit

    campaign = points_campaign(1, "race", overlap=2)
    leases = [lease(cast.owner, campaign), lease(cast.other, campaign)]
    start = threading.Barrier(2)

    def send(i: int) -> bool:
        try:
            start.wait()
            result = points_submit(
                user=[cast.owner, cast.other][i],
                assignment_id=leases[i].pk,
                raw_labels=answers(red_square=SQUARES),
                idempotency_key=uuid.uuid4().hex,
            )
            return result.created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(send, range(2))) == [True, True]
    assert ItemAgreement.objects.count() == 1 and ItemAgreement.objects.get().status == "agreed"
    assert _totals(campaign).items == 1 and _statuses() == ["accepted", "accepted"]
