"""AMA writes: the annotator's moves in the question loop (see LOOP.md).

ask -> (answer made by the `ama.answer` task) -> accept | reject with feedback -> the
next round is answered ... until accepted, or the session is skipped with a reason.
Every move locks the session row (SELECT FOR UPDATE) first, then works on its rounds,
so two tabs or a double click cannot create two rounds or accept twice. The question
and feedback are stored before any answer is made: nothing typed is lost when the LLM
or the captioner is down; a failed round keeps them and "Retry" runs it again.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from annotator_app.ama.models import (
    FEEDBACK_MAX_CHARS,
    QUESTION_MAX_CHARS,
    AmaRound,
    AmaSession,
    RoundStatus,
    SessionStatus,
    Verdict,
)
from annotator_app.ama.queueing import enqueue_answer
from annotator_app.work.errors import Refused
from annotator_app.work.models import Assignment, AssignmentStatus
from annotator_app.work.services import (
    SKIP_REASON_MAX_CHARS,
    AssignmentStateError,
    assignment_skip,
    assignment_submit,
)


class AmaError(Refused):
    """A refused move; `status_code` is the HTTP answer (400 bad input, 409 wrong state)."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def session_for_assignment(*, assignment: Assignment) -> AmaSession:
    """The assignment's session, created on first sight (the page calls this)."""
    session, _ = AmaSession.objects.get_or_create(
        assignment=assignment,
        defaults={
            "annotator_id": assignment.annotator_id,
            "campaign_id": assignment.item.campaign_id,
            "image_id": assignment.item.image_id,
        },
    )
    return session


def _locked_open_session(user: Any, session_id: int) -> AmaSession:
    session = (
        AmaSession.objects.select_for_update()
        .filter(pk=session_id, annotator_id=user.pk)
        .select_related("assignment")
        .first()
    )
    if session is None:
        raise AmaError("no such AMA session", status_code=404)
    if session.status != SessionStatus.OPEN:
        raise AmaError(
            f"the session is {session.status}; nothing more can be done", status_code=409
        )
    if session.assignment.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
        raise AmaError(f"the assignment is {session.assignment.status}", status_code=409)
    return session


def _clean_text(value: str, *, field: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise AmaError(f"{field}: must not be empty")
    if len(text) > limit:
        raise AmaError(f"{field}: at most {limit} characters")
    if "\x00" in text:
        raise AmaError(f"{field}: must not contain NUL characters")
    return text


def _latest(session: AmaSession) -> AmaRound | None:
    return session.rounds.order_by("-index").first()


def _new_round(session: AmaSession, *, index: int, question: str) -> AmaRound:
    created = AmaRound.objects.create(session=session, index=index, question=question)
    transaction.on_commit(lambda: enqueue_answer(created.pk))
    AmaSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
    return created


def ama_ask(*, user: Any, session_id: int, question: str) -> AmaRound:
    """Store the question as round 1 and enqueue its answer."""
    text = _clean_text(question, field="question", limit=QUESTION_MAX_CHARS)
    with transaction.atomic():
        session = _locked_open_session(user, session_id)
        if session.rounds.exists():
            raise AmaError("this session already has its question", status_code=409)
        return _new_round(session, index=1, question=text)


def _locked_round(user: Any, round_id: int) -> tuple[AmaSession, AmaRound]:
    session_id = (
        AmaRound.objects.filter(pk=round_id, session__annotator_id=user.pk)
        .values_list("session_id", flat=True)
        .first()
    )
    if session_id is None:
        raise AmaError("no such AMA round", status_code=404)
    session = _locked_open_session(user, session_id)
    current = _latest(session)
    if current is None or current.pk != round_id:
        raise AmaError("only the latest round can be judged or retried", status_code=409)
    return session, current


def _judgeable(current: AmaRound) -> None:
    if current.status != RoundStatus.DONE:
        raise AmaError(f"the answer is not ready (it is {current.status})", status_code=409)
    if current.verdict != Verdict.PENDING:
        raise AmaError(f"this answer was already {current.verdict}", status_code=409)


def ama_reject(*, user: Any, round_id: int, feedback: str) -> AmaRound:
    """Reject the latest answer with feedback; returns the new round asking for a revision."""
    text = _clean_text(feedback, field="feedback", limit=FEEDBACK_MAX_CHARS)
    with transaction.atomic():
        session, current = _locked_round(user, round_id)
        _judgeable(current)
        current.verdict = Verdict.REJECTED
        current.feedback = text
        current.decided_at = timezone.now()
        current.save(update_fields=["verdict", "feedback", "decided_at"])
        return _new_round(session, index=current.index + 1, question=current.question)


def ama_accept(*, user: Any, round_id: int, active_seconds: int | None = None) -> AmaSession:
    """Accept the latest answer: it becomes the QA pair and the assignment is submitted."""
    with transaction.atomic():
        session, current = _locked_round(user, round_id)
        _judgeable(current)
        now = timezone.now()
        current.verdict = Verdict.ACCEPTED
        current.decided_at = now
        current.save(update_fields=["verdict", "decided_at"])
        try:
            assignment_submit(assignment=session.assignment, active_seconds=active_seconds)
        except AssignmentStateError as exc:
            raise AmaError(str(exc), status_code=409) from exc
        session.status = SessionStatus.ACCEPTED
        session.accepted_at = now
        session.save(update_fields=["status", "accepted_at", "updated_at"])
    return session


def ama_retry(*, user: Any, round_id: int) -> AmaRound:
    """Run a failed round again (same question, same feedback history)."""
    with transaction.atomic():
        _, current = _locked_round(user, round_id)
        if current.status != RoundStatus.FAILED:
            raise AmaError(
                f"only a failed answer can be retried (it is {current.status})", status_code=409
            )
        current.status = RoundStatus.PENDING
        current.failure_reason = ""
        current.attempts = 0
        current.stage_started_at = timezone.now()
        current.save(update_fields=["status", "failure_reason", "attempts", "stage_started_at"])
        transaction.on_commit(lambda: enqueue_answer(current.pk))
    return current


def ama_skip(*, user: Any, session_id: int, reason: str) -> AmaSession:
    """Abandon the session with a reason; its rounds stay stored; the slot is freed."""
    text = _clean_text(reason, field="reason", limit=SKIP_REASON_MAX_CHARS)
    with transaction.atomic():
        session = _locked_open_session(user, session_id)
        try:
            assignment_skip(assignment=session.assignment, reason=text)
        except AssignmentStateError as exc:
            raise AmaError(str(exc), status_code=409) from exc
        session.status = SessionStatus.SKIPPED
        session.skip_reason = text
        session.save(update_fields=["status", "skip_reason", "updated_at"])
    return session
