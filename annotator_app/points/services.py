"""Points writes: what happens when an annotator presses "Submit points".

`points_submit` checks the request in order (idempotent replay, whose assignment, its
state, every label and point against the limits and the campaign's collection method),
then in one transaction saves the annotation with its labels, submits the assignment
and, when this was the item's last missing annotation, compares the annotations
(agreement.py). Every refusal raises a PointsError carrying the HTTP status and a
message naming the problem; a refused request stores nothing.

Locking order (as in the work engine): assignment rows first, then the item row.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from annotator_app.points.models import LABEL_MAX_CHARS, LabelAnnotation, PointsAnnotation
from annotator_app.work.errors import CLIENT_KEY, Refused
from annotator_app.work.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignKind,
    CollectionMethod,
)
from annotator_app.work.services import AssignmentStateError, assignment_submit

MAX_SECONDS = 24 * 3600
# Control characters other than whitespace have no place in a referring expression.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


class PointsError(Refused):
    """A submission is refused (see work/errors.py)."""


class PointsInvalid(PointsError):
    """The labels or points break a rule (400)."""


class PointsNotFound(PointsError):
    """No such assignment or annotation for this user (404: others' are not revealed)."""

    status_code = 404


class PointsConflict(PointsError):
    """The assignment cannot take points now, or the key is used elsewhere (409)."""

    status_code = 409


@dataclass(frozen=True)
class LabelInput:
    label: str
    key: str
    points: list[tuple[float, float]]
    seconds: float


@dataclass(frozen=True)
class SubmitResult:
    annotation: PointsAnnotation
    created: bool  # False: an earlier request with the same idempotency key


def label_key(label: str) -> str:
    """The label folded for comparison: Unicode NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())


def _clean_label(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise PointsInvalid(f"{where}.label: must be a string")
    if _CONTROL.search(raw):
        raise PointsInvalid(f"{where}.label: must not contain control characters")
    label = " ".join(raw.split())
    if not label:
        raise PointsInvalid(f"{where}.label: must not be empty")
    if len(label) > LABEL_MAX_CHARS:
        raise PointsInvalid(
            f"{where}.label: at most {LABEL_MAX_CHARS} characters, got {len(label)}"
        )
    return label


def _coordinate(point: Any, axis: str, where: str) -> float:
    value = point.get(axis) if isinstance(point, dict) else None
    # bool is an int to Python; a JSON true is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PointsInvalid(f"{where}.{axis}: must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise PointsInvalid(f"{where}.{axis}: must be a finite number, got {value!r}")
    if not 0.0 <= number <= 100.0:
        raise PointsInvalid(
            f"{where}.{axis}: must be between 0 and 100 (percent of the image), got {value!r}"
        )
    return number


def _clean_points(raw: Any, where: str) -> list[tuple[float, float]]:
    limit = settings.POINTS_MAX_PER_LABEL
    if not isinstance(raw, list):
        raise PointsInvalid(f"{where}.points: must be a list of {{x, y}}")
    if len(raw) > limit:
        raise PointsInvalid(f"{where}.points: at most {limit} points per label, got {len(raw)}")
    return [
        (_coordinate(p, "x", f"{where}.points[{i}]"), _coordinate(p, "y", f"{where}.points[{i}]"))
        for i, p in enumerate(raw)
    ]


def _clean_seconds(raw: Any, where: str) -> float:
    if raw is None:
        return 0.0
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise PointsInvalid(f"{where}.seconds: must be a number of seconds")
    if not 0 <= raw <= MAX_SECONDS:
        raise PointsInvalid(f"{where}.seconds: must be between 0 and {MAX_SECONDS}")
    return float(raw)


def _clean_one(raw: Any, where: str) -> LabelInput:
    if not isinstance(raw, dict):
        raise PointsInvalid(f"{where}: must be an object with label, points, not_present")
    label = _clean_label(raw.get("label"), where)
    points = _clean_points(raw.get("points", []), where)
    not_present = raw.get("not_present", False)
    if not isinstance(not_present, bool):
        raise PointsInvalid(f"{where}.not_present: must be true or false")
    if not_present and points:
        raise PointsInvalid(f"{where}: marked not present but has {len(points)} points")
    if not not_present and not points:
        raise PointsInvalid(
            f"{where}: {label!r} has no points; point at every instance or mark it not present"
        )
    return LabelInput(label, label_key(label), points, _clean_seconds(raw.get("seconds"), where))


def points_clean_labels(*, raw_labels: Any, campaign: Campaign) -> list[LabelInput]:
    """Check a submission's labels against the limits and the campaign's method.

    Counting campaigns take exactly their label prompts, each once; pointing campaigns
    take the annotator's own labels. Raises PointsInvalid naming the first problem.
    """
    limit = settings.POINTS_MAX_LABELS
    if not isinstance(raw_labels, list) or not raw_labels:
        raise PointsInvalid("labels: give at least one label (or skip the image)")
    if len(raw_labels) > limit:
        raise PointsInvalid(f"labels: at most {limit} labels per image, got {len(raw_labels)}")
    labels = [_clean_one(raw, f"labels[{i}]") for i, raw in enumerate(raw_labels)]
    seen: dict[str, int] = {}
    for i, item in enumerate(labels):
        if item.key in seen:
            raise PointsInvalid(
                f"labels[{i}].label: {item.label!r} is given twice (also labels[{seen[item.key]}]);"
                " put every instance under one label"
            )
        seen[item.key] = i
    if campaign.collection_method == CollectionMethod.COUNTING:
        _check_prompts_answered(labels, campaign.label_prompts)
    return labels


def _check_prompts_answered(labels: list[LabelInput], prompts: list[str]) -> None:
    wanted = {label_key(p): p for p in prompts}
    for i, item in enumerate(labels):
        if item.key not in wanted:
            raise PointsInvalid(
                f"labels[{i}].label: {item.label!r} is not one of this campaign's labels"
            )
    given = {item.key for item in labels}
    missing = [p for key, p in wanted.items() if key not in given]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        raise PointsInvalid(f"labels: answer every label of this campaign; missing {shown}")


def _check_active_seconds(active_seconds: int | None) -> None:
    if active_seconds is not None and not 0 <= active_seconds <= MAX_SECONDS:
        raise PointsInvalid(f"active_seconds: must be between 0 and {MAX_SECONDS}")


def _replay(*, user: Any, assignment_id: int, idempotency_key: str) -> PointsAnnotation | None:
    existing = PointsAnnotation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if existing.annotator_id != user.pk or existing.assignment_id != assignment_id:
        raise PointsConflict(
            "this Idempotency-Key was already used for a different submission; "
            "generate a new key for each image"
        )
    return existing


def _check_assignment(*, user: Any, assignment_id: int) -> Assignment:
    assignment = (
        Assignment.objects.select_related("item__campaign", "item__image")
        .filter(pk=assignment_id, annotator_id=user.pk)
        .first()
    )
    if assignment is None:
        raise PointsNotFound(f"assignment {assignment_id} not found")
    if assignment.item.campaign.kind != CampaignKind.POINTS:
        raise PointsInvalid(
            f"assignment {assignment_id} belongs to a {assignment.item.campaign.kind} "
            "campaign, which takes no points"
        )
    if assignment.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
        raise PointsConflict(
            f"assignment {assignment_id} is {assignment.status}, not leased: it takes no new points"
        )
    if PointsAnnotation.objects.filter(assignment_id=assignment_id).exists():
        raise PointsConflict(f"assignment {assignment_id} already has points")
    return assignment


def _lock_item_turns(assignment: Assignment) -> None:
    """Lock this assignment and its item's submitted ones, by id, before the item row.

    The agreement check may accept those submissions; taking their locks first keeps the
    order "assignments, then item" that every other move follows.
    """
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM work_assignment WHERE item_id = %s"
            " AND (id = %s OR status IN ('submitted', 'accepted')) ORDER BY id FOR UPDATE",
            [assignment.item_id, assignment.pk],
        )


def _write_labels(annotation: PointsAnnotation, labels: list[LabelInput], method: str) -> None:
    LabelAnnotation.objects.bulk_create(
        LabelAnnotation(
            annotation=annotation,
            position=position,
            label=item.label,
            label_key=item.key,
            collection_method=method,
            points=[{"x": x, "y": y} for x, y in item.points],
            count=len(item.points),
            seconds=item.seconds,
        )
        for position, item in enumerate(labels)
    )


def points_submit(
    *,
    user: Any,
    assignment_id: int,
    raw_labels: Any,
    idempotency_key: str,
    active_seconds: int | None = None,
) -> SubmitResult:
    """Store one annotator's points for their leased points assignment.

    A repeated request with the same key returns the first one's annotation
    (created=False) and changes nothing, also when two arrive at once: the unique key
    decides.
    """
    from annotator_app.points.agreement import agreement_on_submit

    if not CLIENT_KEY.match(idempotency_key or ""):
        raise PointsInvalid(
            "the Idempotency-Key header is missing or malformed (8-64 letters, digits, - or _)"
        )
    existing = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
    if existing is not None:
        return SubmitResult(existing, created=False)
    _check_active_seconds(active_seconds)
    try:
        assignment = _check_assignment(user=user, assignment_id=assignment_id)
    except PointsConflict:
        raced = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
        if raced is None:
            raise
        return SubmitResult(raced, created=False)
    campaign = assignment.item.campaign
    labels = points_clean_labels(raw_labels=raw_labels, campaign=campaign)
    try:
        with transaction.atomic():
            _lock_item_turns(assignment)
            annotation = PointsAnnotation.objects.create(
                assignment=assignment,
                annotator_id=user.pk,
                campaign_id=campaign.pk,
                item_id=assignment.item_id,
                image_id=assignment.item.image_id,
                idempotency_key=idempotency_key,
            )
            _write_labels(annotation, labels, campaign.collection_method)
            assignment_submit(assignment=assignment, active_seconds=active_seconds)
            agreement_on_submit(item_id=assignment.item_id, campaign=campaign)
    except IntegrityError:
        raced = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
        if raced is not None:
            return SubmitResult(raced, created=False)
        raise PointsConflict(f"assignment {assignment_id} already has points") from None
    except AssignmentStateError as exc:
        raise PointsConflict(f"assignment {assignment_id}: {exc}") from None
    return SubmitResult(annotation, created=True)


def points_amend(*, user: Any, annotation_id: int, raw_labels: Any) -> PointsAnnotation:
    """Replace the labels of one's own submission while nobody has used it yet.

    Allowed while the assignment is submitted (not reviewed) and the item's annotations
    have not been compared; otherwise 409. Anyone else's annotation is 404.
    """
    annotation = (
        PointsAnnotation.objects.select_related("campaign")
        .filter(pk=annotation_id, annotator_id=user.pk)
        .first()
    )
    if annotation is None:
        raise PointsNotFound(f"points annotation {annotation_id} not found")
    labels = points_clean_labels(raw_labels=raw_labels, campaign=annotation.campaign)
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=annotation.assignment_id)
        if locked.status != AssignmentStatus.SUBMITTED:
            raise PointsConflict(
                f"points annotation {annotation_id} is {locked.status}: it can no longer change"
            )
        if annotation.agreements.exists():
            raise PointsConflict(
                f"points annotation {annotation_id} was already compared with other "
                "annotators' points: it can no longer change"
            )
        annotation.labels.all().delete()
        _write_labels(annotation, labels, annotation.campaign.collection_method)
        annotation.save(update_fields=["updated_at"])
    return annotation
