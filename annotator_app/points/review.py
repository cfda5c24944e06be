"""Reviewers' decisions on points.

Overlap 1: each submission is accepted or rejected on its own (work's
`assignment_verdict`). Overlap > 1: an item whose annotators disagreed (or named
nothing in common) is decided as a whole: accept every annotation, pick one (the others
are accepted but marked superseded, so only the chosen points reach the dataset), or
reject one with a reason (its slot reopens; when the replacement arrives the item is
compared again).

Locking order: assignments (by id, through assignment_verdict), then the item row (a
rejection frees its slot), then the agreement row (compare-and-set on its status).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from annotator_app.points.models import (
    NEEDS_REVIEW,
    AgreementStatus,
    ItemAgreement,
    PointsAnnotation,
)
from annotator_app.work.models import AssignmentStatus
from annotator_app.work.services import AssignmentStateError, assignment_verdict

PICKED_NOTE = "Accepted; another annotator's points were chosen for this image."
REASON_MAX_CHARS = 2000


class ReviewError(ValueError):
    """The decision cannot be made; the message says why."""


def _open(agreement: ItemAgreement) -> list[PointsAnnotation]:
    if agreement.status not in NEEDS_REVIEW:
        raise ReviewError(f"this image was already decided ({agreement.get_status_display()})")
    return list(agreement.compared.select_related("assignment").order_by("assignment_id"))


def _close(agreement: ItemAgreement, *, reviewer: Any, status: str, note: str) -> None:
    changed = ItemAgreement.objects.filter(pk=agreement.pk, status__in=NEEDS_REVIEW).update(
        status=status, resolved_by=reviewer, resolved_at=timezone.now(), resolution=note
    )
    if changed != 1:
        raise ReviewError("another reviewer decided this image meanwhile")


def _verdict(annotation: PointsAnnotation, *, reviewer: Any, accept: bool, reason: str) -> None:
    if annotation.assignment.status == AssignmentStatus.ACCEPTED and accept:
        return
    try:
        assignment_verdict(
            assignment=annotation.assignment, reviewer=reviewer, accept=accept, reason=reason
        )
    except AssignmentStateError as exc:
        raise ReviewError(str(exc)) from None


def review_accept_all(*, agreement: ItemAgreement, reviewer: Any) -> None:
    """Every annotation of the item is good: accept them all."""
    with transaction.atomic():
        for annotation in _open(agreement):
            _verdict(annotation, reviewer=reviewer, accept=True, reason="")
        _close(agreement, reviewer=reviewer, status=AgreementStatus.RESOLVED, note="accepted all")


def review_pick(*, agreement: ItemAgreement, reviewer: Any, annotation_id: int) -> None:
    """Keep one annotator's points for the dataset; the others are accepted, superseded."""
    with transaction.atomic():
        annotations = _open(agreement)
        if annotation_id not in {a.pk for a in annotations}:
            raise ReviewError(f"annotation {annotation_id} is not one of this image's")
        for annotation in annotations:
            chosen = annotation.pk == annotation_id
            _verdict(
                annotation, reviewer=reviewer, accept=True, reason="" if chosen else PICKED_NOTE
            )
        PointsAnnotation.objects.filter(pk__in=[a.pk for a in annotations]).exclude(
            pk=annotation_id
        ).update(superseded=True)
        _close(
            agreement,
            reviewer=reviewer,
            status=AgreementStatus.RESOLVED,
            note=f"picked annotation {annotation_id}",
        )


def review_reject(
    *, agreement: ItemAgreement, reviewer: Any, annotation_id: int, reason: str
) -> None:
    """Reject one annotation with a reason; its slot reopens for another annotator."""
    reason = reason.strip()
    if not reason:
        raise ReviewError("reason: say why the points are rejected")
    if len(reason) > REASON_MAX_CHARS:
        raise ReviewError(f"reason: at most {REASON_MAX_CHARS} characters")
    with transaction.atomic():
        annotations = {a.pk: a for a in _open(agreement)}
        if annotation_id not in annotations:
            raise ReviewError(f"annotation {annotation_id} is not one of this image's")
        _verdict(annotations[annotation_id], reviewer=reviewer, accept=False, reason=reason)
        _close(
            agreement,
            reviewer=reviewer,
            status=AgreementStatus.REOPENED,
            note=f"rejected annotation {annotation_id}: {reason}",
        )
