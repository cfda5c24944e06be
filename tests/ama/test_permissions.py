"""Who may read and act on an AMA session: the attacker's requests, each answered 404."""

from __future__ import annotations

import pytest

from annotator_app.accounts.models import Role
from annotator_app.accounts.services import user_ensure
from annotator_app.ama.models import AmaRound, AmaSession, RoundStatus
from tests.ama.helpers import API, ama_campaign, open_session, sign_png, store_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def asked(cast, api_as):  # type: ignore[no-untyped-def]
    campaign = ama_campaign([store_image(sign_png(["OPEN"]))], reviewers=[cast.reviewer])
    session = open_session(cast.owner, campaign)
    response = api_as(cast.owner).post(
        f"{API}/sessions/{session.pk}/ask/", {"question": "What does the sign say?"}, format="json"
    )
    assert response.status_code == 201, response.content
    # The answer as a worker would have stored it.
    AmaRound.objects.filter(session=session).update(status=RoundStatus.DONE, answer="It says open.")
    return campaign, session, AmaRound.objects.get(session=session)


def test_the_annotator_reviewers_of_the_campaign_and_admins_read_a_session(
    cast, api_as, asked
) -> None:
    _, session, _ = asked
    url = f"{API}/sessions/{session.pk}/"
    for reader in (cast.owner, cast.reviewer, cast.admin):
        body = api_as(reader).get(url).json()
        assert body["rounds"][0]["question"] == "What does the sign say?"
    assert api_as(cast.other).get(url).status_code == 404
    assert api_as(None).get(url).status_code in (401, 403)
    outsider = user_ensure(username="rev2", password="pw-rev2-123", role=Role.REVIEWER)[0]
    ama_campaign([store_image(sign_png(["CLOSED"]))], reviewers=[outsider])
    assert api_as(outsider).get(url).status_code == 404


def test_nobody_but_the_annotator_acts_on_the_session(cast, api_as, asked) -> None:
    _, session, current = asked
    moves = [
        (f"{API}/sessions/{session.pk}/ask/", {"question": "Injected?"}),
        (f"{API}/sessions/{session.pk}/skip/", {"reason": "attack"}),
        (f"{API}/rounds/{current.pk}/reject/", {"feedback": "attack"}),
        (f"{API}/rounds/{current.pk}/retry/", {}),
        (f"{API}/rounds/{current.pk}/accept/", {}),
    ]
    for attacker in (cast.other, cast.reviewer, cast.admin):
        for url, body in moves:
            response = api_as(attacker).post(url, body, format="json")
            assert response.status_code == 404, (attacker, url, response.content)
    current.refresh_from_db()
    session.refresh_from_db()
    assert (current.verdict, current.feedback, session.status) == ("pending", "", "open")
    assert AmaRound.objects.filter(session=session).count() == 1


def test_bad_input_is_refused_with_the_field_named_and_nothing_written(cast, api_as, asked) -> None:
    _, session, current = asked
    client = api_as(cast.owner)
    no_feedback = client.post(
        f"{API}/rounds/{current.pk}/reject/", {"feedback": "  "}, format="json"
    )
    assert no_feedback.status_code == 400 and "feedback" in no_feedback.json()
    too_long = client.post(
        f"{API}/rounds/{current.pk}/reject/", {"feedback": "x" * 2001}, format="json"
    )
    assert too_long.status_code == 400 and "feedback" in too_long.json()
    again = client.post(
        f"{API}/sessions/{session.pk}/ask/", {"question": "Another?"}, format="json"
    )
    assert again.status_code == 409 and "already has its question" in again.json()["detail"]
    not_failed = client.post(f"{API}/rounds/{current.pk}/retry/", {}, format="json")
    assert not_failed.status_code == 409 and "only a failed answer" in not_failed.json()["detail"]
    no_reason = client.post(f"{API}/sessions/{session.pk}/skip/", {"reason": ""}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    assert AmaRound.objects.filter(session=session).count() == 1
    assert AmaSession.objects.get(pk=session.pk).status == "open"


def test_an_empty_or_oversized_question_is_refused(cast, api_as) -> None:
    campaign = ama_campaign([store_image(sign_png(["OPEN"]))])
    session = open_session(cast.owner, campaign)
    client = api_as(cast.owner)
    for question in ("", "   ", "q" * 2001):
        response = client.post(
            f"{API}/sessions/{session.pk}/ask/", {"question": question}, format="json"
        )
        assert response.status_code == 400 and "question" in response.json()
    assert not AmaRound.objects.exists()


def test_an_answer_still_being_made_cannot_be_judged(cast, api_as) -> None:
    campaign = ama_campaign([store_image(sign_png(["OPEN"]))])
    session = open_session(cast.owner, campaign)
    client = api_as(cast.owner)
    client.post(f"{API}/sessions/{session.pk}/ask/", {"question": "What?"}, format="json")
    current = AmaRound.objects.get()
    for action, body in (("accept", {}), ("reject", {"feedback": "no"})):
        response = client.post(f"{API}/rounds/{current.pk}/{action}/", body, format="json")
        assert response.status_code == 409 and "not ready" in response.json()["detail"]
    assert AmaRound.objects.get().verdict == "pending"
