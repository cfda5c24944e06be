"""The AMA review pages: reviewers of the campaign see every round; verdicts; outsiders 404."""

from __future__ import annotations

import pytest
from django.test import Client

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.ama import services
from annotator_app.ama.models import AmaRound, RoundStatus
from annotator_app.ama.selectors import ama_pairs_for_export, preference_pairs_for_export
from tests.ama.helpers import ama_campaign, open_session, sign_png, store_image

pytestmark = pytest.mark.django_db


def answered(round_: AmaRound, text: str) -> None:
    AmaRound.objects.filter(pk=round_.pk).update(
        status=RoundStatus.DONE, answer=text, caption_source="none"
    )


@pytest.fixture
def finished(cast):  # type: ignore[no-untyped-def]
    campaign = ama_campaign([store_image(sign_png(["OPEN"]))], reviewers=[cast.reviewer])
    session = open_session(cast.owner, campaign)
    first = services.ama_ask(user=cast.owner, session_id=session.pk, question="What does it say?")
    answered(first, "It says closed.")
    second = services.ama_reject(user=cast.owner, round_id=first.pk, feedback="Read it again.")
    answered(second, "It says open.")
    services.ama_accept(user=cast.owner, round_id=second.pk)
    return campaign, session


def page_as(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_reviewers_see_every_round_of_finished_sessions(cast, finished) -> None:
    campaign, session = finished
    index = page_as(cast.reviewer).get("/ama/review/")
    assert index.status_code == 200 and campaign.name in index.content.decode()
    queue = page_as(cast.reviewer).get(f"/ama/review/{campaign.pk}/").content.decode()
    for text in ("What does it say?", "It says closed.", "Read it again.", "It says open."):
        assert text in queue
    assert "Rejected with feedback" in queue and f"Session {session.pk}" in queue
    assert page_as(cast.admin).get(f"/ama/review/{campaign.pk}/").status_code == 200


def test_annotators_and_reviewers_of_other_campaigns_get_404(cast, finished) -> None:
    campaign, session = finished
    outsider = user_ensure(username="rev2", password="pw-rev2-123", role=Role.REVIEWER)[0]
    ama_campaign([store_image(sign_png(["CLOSED"]))], reviewers=[outsider])
    for user in (cast.owner, cast.other, outsider):
        assert page_as(user).get(f"/ama/review/{campaign.pk}/").status_code == 404
        response = page_as(user).post(
            f"/ama/review/verdict/{session.assignment_id}/", {"decision": "accept"}
        )
        assert response.status_code == 404
    assert page_as(cast.other).get("/ama/review/").status_code == 404
    session.assignment.refresh_from_db()
    assert session.assignment.status == "submitted"


def test_a_rejected_pair_leaves_the_export_and_an_accepted_one_stays(cast, finished) -> None:
    campaign, session = finished
    client = page_as(cast.reviewer)
    bad = client.post(f"/ama/review/verdict/{session.assignment_id}/", {"decision": "maybe"})
    assert bad.status_code == 400
    assert len(list(ama_pairs_for_export(campaign=campaign))) == 1
    response = client.post(
        f"/ama/review/verdict/{session.assignment_id}/", {"decision": "reject", "reason": "Wrong"}
    )
    assert response.status_code == 302
    assert list(ama_pairs_for_export(campaign=campaign)) == []
    assert list(preference_pairs_for_export(campaign=campaign)) == []
