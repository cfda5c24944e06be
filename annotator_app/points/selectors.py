"""Points reads: who may see which points, review queues, Molmo text, export rows.

`label_annotations_for_export` is what the dataset export (P7) streams: see the app's
docstring (annotator_app/points/__init__.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from annotator_app.accounts.permissions import owns
from annotator_app.catalog.selectors import image_media_url
from annotator_app.points.models import (
    NEEDS_REVIEW,
    AgreementTotals,
    ItemAgreement,
    LabelAnnotation,
    PointsAnnotation,
)
from annotator_app.work.models import AssignmentStatus, Campaign, CampaignKind, CollectionMethod
from annotator_app.work.selectors import campaigns_reviewable_by, can_review_campaign
from pipelines.molmo_text import count_answer, points_to_text

# Colours of annotators on the review page (CSS classes ann-0 .. ann-7).
PALETTE_SIZE = 8


def _annotations() -> QuerySet[PointsAnnotation]:
    return PointsAnnotation.objects.select_related(
        "assignment", "campaign", "image", "annotator"
    ).prefetch_related(Prefetch("labels", queryset=LabelAnnotation.objects.order_by("position")))


def points_visible_to(user: Any, annotation: PointsAnnotation) -> bool:
    """Its annotator, the reviewers of its campaign, and admins."""
    if not getattr(user, "is_authenticated", False):
        return False
    return owns(user, annotation) or can_review_campaign(user, annotation.campaign)


def annotation_get_visible(*, user: Any, annotation_id: int) -> PointsAnnotation | None:
    """The annotation when this user may see it, else None (the API answers 404)."""
    annotation = _annotations().filter(pk=annotation_id).first()
    if annotation is None or not points_visible_to(user, annotation):
        return None
    return annotation


def annotation_list_own(*, user: Any) -> QuerySet[PointsAnnotation]:
    return _annotations().filter(annotator_id=user.pk).order_by("-created_at", "-id")


def label_molmo_text(label: LabelAnnotation) -> str:
    """The label's answer in Molmo's text format (pipelines/molmo_text.py)."""
    points = label.point_pairs
    if label.collection_method == CollectionMethod.COUNTING:
        return count_answer(points, label.label)
    return points_to_text(points, label.label)


# --- export --------------------------------------------------------------------------------


def label_annotations_for_export(
    *,
    campaign: Campaign | None = None,
    since: datetime | None = None,
    statuses: Sequence[str] = (AssignmentStatus.ACCEPTED,),
) -> QuerySet[LabelAnnotation]:
    """Accepted labels that belong in the dataset, oldest first, with their image.

    Rows of accepted assignments (or of `statuses`, e.g. submitted work awaiting review
    too) whose annotation was not superseded by a reviewer's pick. Each row has `annotation.image` loaded (sha256, storage_key, source_url,
    width, height). Stream with `.iterator(chunk_size=...)`; the order (by id) is stable.
    """
    rows = LabelAnnotation.objects.select_related("annotation__image").filter(
        annotation__assignment__status__in=list(statuses),
        annotation__superseded=False,
    )
    if campaign is not None:
        rows = rows.filter(annotation__campaign=campaign)
    if since is not None:
        rows = rows.filter(annotation__created_at__gte=since)
    return rows.order_by("id")


# --- review --------------------------------------------------------------------------------


def points_campaigns_to_review(*, user: Any) -> list[Campaign]:
    """Points campaigns this user reviews, each with `waiting`: what its queue holds."""
    singles = (
        PointsAnnotation.objects.filter(
            campaign=OuterRef("pk"), assignment__status=AssignmentStatus.SUBMITTED
        )
        .values("campaign")
        .annotate(n=Count("id"))
        .values("n")
    )
    groups = (
        ItemAgreement.objects.filter(campaign=OuterRef("pk"), status__in=NEEDS_REVIEW)
        .values("campaign")
        .annotate(n=Count("id"))
        .values("n")
    )
    campaigns = (
        campaigns_reviewable_by(user)
        .filter(kind=CampaignKind.POINTS)
        .annotate(
            singles=Coalesce(Subquery(singles, output_field=IntegerField()), 0),
            groups=Coalesce(Subquery(groups, output_field=IntegerField()), 0),
        )
        .order_by("-priority", "id")
    )
    result: list[Campaign] = list(campaigns)
    for c in result:
        c.waiting = c.groups if c.overlap > 1 else c.singles  # type: ignore[attr-defined]
    return result


def review_singles(*, campaign: Campaign) -> QuerySet[PointsAnnotation]:
    """Overlap 1: submissions waiting for a verdict, oldest first."""
    return (
        _annotations()
        .filter(campaign=campaign, assignment__status=AssignmentStatus.SUBMITTED)
        .order_by("assignment__submitted_at", "id")
    )


def review_groups(*, campaign: Campaign) -> QuerySet[ItemAgreement]:
    """Overlap > 1: items whose annotators disagreed, oldest comparison first."""
    return (
        ItemAgreement.objects.filter(campaign=campaign, status__in=NEEDS_REVIEW)
        .select_related("item__image")
        .prefetch_related(
            Prefetch(
                "compared",
                queryset=_annotations().order_by("id"),
            )
        )
        .order_by("computed_at", "id")
    )


def agreement_get_reviewable(*, user: Any, agreement_id: int) -> ItemAgreement | None:
    found = ItemAgreement.objects.select_related("campaign").filter(pk=agreement_id).first()
    if found is None or not can_review_campaign(user, found.campaign):
        return None
    return found


@dataclass(frozen=True)
class Marker:
    cx: float  # pixels of the image (the SVG's viewBox)
    cy: float
    r: float  # smaller for each next annotator: agreeing points show as nested rings
    colour: int  # palette index
    title: str


@dataclass(frozen=True)
class ReviewLabel:
    """One label as the reviewer sees it: each annotator's answer and their points."""

    label: str
    status: str  # "agreed", "disagreed", "single" (only one annotator gave it), ""
    answers: list[tuple[int, str, int, str]]  # (colour, annotator, count, Molmo text)
    markers: list[Marker]


@dataclass(frozen=True)
class ReviewEntry:
    image_url: str
    width: int
    height: int
    annotators: list[tuple[int, PointsAnnotation]]  # (colour, annotation)
    labels: list[ReviewLabel]


def _label_status(key: str, agreement: ItemAgreement | None) -> str:
    if agreement is None:
        return ""
    for label in agreement.labels:
        if label["key"] == key:
            return "agreed" if label["agreed"] else "disagreed"
    return "single"


def review_entry(
    *, annotations: list[PointsAnnotation], agreement: ItemAgreement | None = None
) -> ReviewEntry:
    """Everything the review page draws for one image: annotators, labels, markers."""
    image = annotations[0].image
    base = max(4.0, math.hypot(image.width, image.height) * 0.016)
    coloured = [(i % PALETTE_SIZE, a) for i, a in enumerate(annotations)]
    by_key: dict[str, list[tuple[int, PointsAnnotation, LabelAnnotation]]] = {}
    for colour, annotation in coloured:
        for label in annotation.labels.all():
            by_key.setdefault(label.label_key, []).append((colour, annotation, label))
    labels = []
    for key, given in by_key.items():
        answers = []
        markers = []
        for colour, annotation, label in given:
            name = annotation.annotator.get_username()
            answers.append((colour, name, label.count, label_molmo_text(label)))
            radius = base * (1.0 - 0.12 * colour)
            for n, (x, y) in enumerate(label.point_pairs, start=1):
                cx, cy = x * image.width / 100, y * image.height / 100
                title = f"{name} #{n}: {x:.1f}%, {y:.1f}%"
                markers.append(Marker(cx, cy, radius, colour, title))
        labels.append(
            ReviewLabel(given[0][2].label, _label_status(key, agreement), answers, markers)
        )
    return ReviewEntry(
        image_url=image_media_url(image=image),
        width=image.width,
        height=image.height,
        annotators=coloured,
        labels=labels,
    )


# --- agreement figures (the dashboard reads stored totals, never the annotations) ----------


@dataclass(frozen=True)
class AgreementFigures:
    name: str  # campaign name or annotator's username
    items: int
    items_agreed: int
    labels: int
    labels_agreed: int
    pairs: int
    pairs_agreed: int
    pairs_count_agreed: int
    f1_sum: float
    awaiting_review: int = 0

    @staticmethod
    def _share(part: float, whole: int) -> float | None:
        return round(100.0 * part / whole, 1) if whole else None

    @property
    def items_agreed_pct(self) -> float | None:
        return self._share(self.items_agreed, self.items)

    @property
    def labels_agreed_pct(self) -> float | None:
        return self._share(self.labels_agreed, self.labels)

    @property
    def count_agreed_pct(self) -> float | None:
        return self._share(self.pairs_count_agreed, self.pairs)

    @property
    def mean_f1(self) -> float | None:
        return round(self.f1_sum / self.pairs, 3) if self.pairs else None


_SUMS = (
    "items",
    "items_agreed",
    "labels",
    "labels_agreed",
    "pairs",
    "pairs_agreed",
    "pairs_count_agreed",
    "f1_sum",
)


def agreement_by_campaign() -> list[tuple[Campaign, AgreementFigures]]:
    """Per points campaign with overlap > 1: its stored agreement totals."""
    waiting = (
        ItemAgreement.objects.filter(campaign=OuterRef("pk"), status__in=NEEDS_REVIEW)
        .values("campaign")
        .annotate(n=Count("id"))
        .values("n")
    )
    campaigns: list[Any] = list(
        Campaign.objects.filter(kind=CampaignKind.POINTS, overlap__gt=1)
        .annotate(awaiting=Coalesce(Subquery(waiting, output_field=IntegerField()), 0))
        .order_by("-active", "-priority", "id")
    )
    totals: dict[int, dict[str, Any]] = {
        row["campaign_id"]: row
        for row in AgreementTotals.objects.filter(
            annotator__isnull=True, campaign__in=[c.pk for c in campaigns]
        ).values("campaign_id", *_SUMS)
    }
    result = []
    for campaign in campaigns:
        row = totals.get(campaign.pk, {})
        sums: dict[str, Any] = {f: row.get(f) or 0 for f in _SUMS}
        figures = AgreementFigures(name=campaign.name, awaiting_review=campaign.awaiting, **sums)
        result.append((campaign, figures))
    return result


def agreement_by_annotator(*, campaign: Campaign | None = None) -> list[AgreementFigures]:
    """Per annotator (of one campaign, or summed over all): stored agreement totals."""
    rows = AgreementTotals.objects.filter(annotator__isnull=False)
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    grouped: list[Any] = list(
        rows.values("annotator__username")
        .annotate(**{f: Sum(f) for f in _SUMS})
        .order_by("annotator__username")
    )
    return [
        AgreementFigures(name=row["annotator__username"], **{f: row[f] or 0 for f in _SUMS})
        for row in grouped
    ]
