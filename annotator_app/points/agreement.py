"""Agreement between an item's annotators, computed once and stored when all are in.

When the last of an item's `overlap` annotations is submitted (overlap > 1), the
submitting transaction, holding the item's row lock, compares them label by label
(pipelines/point_agreement.py), stores the outcome in the item's `ItemAgreement` and
adds its figures to the running `AgreementTotals` of the campaign and of each
annotator. Concurrent last submissions are serialised by the item row, so exactly one
sees the item complete. Items where everyone agreed are accepted at once (setting
POINTS_AUTO_ACCEPT_AGREED); the others wait in the points review queue.

If an annotation is later rejected, its slot reopens; when the replacement arrives the
item completes again and its row is recomputed: the old figures are subtracted from
the totals before the new ones are added, so totals always equal the sum over items.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from annotator_app.points.models import (
    AgreementStatus,
    ItemAgreement,
    LabelAnnotation,
    PointsAnnotation,
)
from annotator_app.work.models import AssignmentStatus, Campaign, WorkItem
from annotator_app.work.services import assignments_accept_agreed
from pipelines.point_agreement import AgreementRules, ItemResult, compare_item

AUTO_ACCEPT_NOTE = "Accepted automatically: the annotators agreed."
_TOTAL_FIELDS = (
    "items",
    "items_agreed",
    "labels",
    "labels_agreed",
    "pairs",
    "pairs_agreed",
    "pairs_count_agreed",
    "f1_sum",
)


def agreement_rules() -> AgreementRules:
    return AgreementRules(
        distance=settings.POINTS_AGREEMENT_DISTANCE,
        count_tolerance=settings.POINTS_AGREEMENT_COUNT_TOLERANCE,
    )


def _complete_annotations(item_id: int) -> list[PointsAnnotation]:
    return list(
        PointsAnnotation.objects.filter(
            item_id=item_id,
            assignment__status__in=(AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED),
        ).order_by("id")
    )


def agreement_on_submit(*, item_id: int, campaign: Campaign) -> ItemAgreement | None:
    """Compare the item's annotations if this submission completed it; else None.

    Call inside the submitting transaction, after the assignment was submitted (which
    holds the item's row lock until commit).
    """
    if campaign.overlap < 2:
        return None
    WorkItem.objects.select_for_update().filter(pk=item_id).first()
    annotations = _complete_annotations(item_id)
    if len(annotations) < campaign.overlap:
        return None
    return agreement_compute(item_id=item_id, campaign=campaign, annotations=annotations)


def _inputs(
    annotations: list[PointsAnnotation],
) -> dict[int, dict[str, tuple[str, list[tuple[float, float]]]]]:
    by_annotation: dict[int, dict[str, tuple[str, list[tuple[float, float]]]]] = {
        a.pk: {} for a in annotations
    }
    rows = LabelAnnotation.objects.filter(annotation__in=annotations).order_by(
        "annotation_id", "position"
    )
    for row in rows:
        by_annotation[row.annotation_id][row.label_key] = (row.label, row.point_pairs)
    return by_annotation


def _figures(result: ItemResult, annotators: dict[int, int]) -> dict[str, Any]:
    """What this item adds to the totals: the campaign's and each annotator's."""
    campaign = {
        "items": 1,
        "items_agreed": int(result.agreed),
        "labels": len(result.labels),
        "labels_agreed": sum(label.agreed for label in result.labels),
        "pairs": sum(len(label.pairs) for label in result.labels),
        "pairs_agreed": sum(p.agreed for label in result.labels for p in label.pairs),
        "pairs_count_agreed": sum(p.count_agreed for label in result.labels for p in label.pairs),
        "f1_sum": sum(p.f1 for label in result.labels for p in label.pairs),
    }
    people = {
        str(annotators[annotation_id]): {
            "labels": fig.labels_compared,
            "labels_agreed": fig.labels_agreed,
            "pairs": fig.pairs,
            "pairs_agreed": fig.pairs_agreed,
            "pairs_count_agreed": fig.pairs_count_agreed,
            "f1_sum": fig.f1_sum,
        }
        for annotation_id, fig in result.annotators.items()
    }
    return {"campaign": campaign, "annotators": people}


def _labels_json(result: ItemResult) -> list[dict[str, Any]]:
    return [
        {
            "key": label.key,
            "label": label.label,
            "agreed": label.agreed,
            "counts": {str(k): v for k, v in label.counts.items()},
            "pairs": [
                {
                    "a": p.a,
                    "b": p.b,
                    "count_a": p.count_a,
                    "count_b": p.count_b,
                    "matched": p.matched,
                    "mean_distance": p.mean_distance,
                    "f1": p.f1,
                    "count_agreed": p.count_agreed,
                    "agreed": p.agreed,
                }
                for p in label.pairs
            ],
        }
        for label in result.labels
    ]


_UPSERT = """
INSERT INTO points_agreementtotals (campaign_id, annotator_id, {fields})
VALUES (%s, %s, {values})
ON CONFLICT (campaign_id, annotator_id) DO UPDATE SET {updates}
"""


def _add_totals(
    campaign_id: int, annotator_id: int | None, deltas: dict[str, Any], sign: int
) -> None:
    sql = _UPSERT.format(
        fields=", ".join(_TOTAL_FIELDS),
        values=", ".join(["%s"] * len(_TOTAL_FIELDS)),
        updates=", ".join(
            f"{f} = points_agreementtotals.{f} + EXCLUDED.{f}" for f in _TOTAL_FIELDS
        ),
    )
    values = [sign * deltas.get(f, 0) for f in _TOTAL_FIELDS]
    with connection.cursor() as cur:
        cur.execute(sql, [campaign_id, annotator_id, *values])


def _apply_figures(campaign_id: int, figures: dict[str, Any], sign: int) -> None:
    if not figures:
        return
    _add_totals(campaign_id, None, figures["campaign"], sign)
    for annotator_id in sorted(figures["annotators"], key=int):
        _add_totals(campaign_id, int(annotator_id), figures["annotators"][annotator_id], sign)


def _status(result: ItemResult) -> AgreementStatus:
    if not result.compared:
        return AgreementStatus.UNMATCHED
    return AgreementStatus.AGREED if result.agreed else AgreementStatus.DISAGREED


def agreement_compute(
    *, item_id: int, campaign: Campaign, annotations: list[PointsAnnotation]
) -> ItemAgreement:
    """Compare `annotations` of one item, store the outcome, update the totals.

    Call holding the item's row lock. Replaces an earlier comparison of the item (its
    figures are taken out of the totals first).
    """
    item = WorkItem.objects.select_related("image").get(pk=item_id)
    rules = agreement_rules()
    result = compare_item(
        _inputs(annotations), width=item.image.width, height=item.image.height, rules=rules
    )
    figures = _figures(result, {a.pk: a.annotator_id for a in annotations})
    previous = ItemAgreement.objects.filter(item_id=item_id).first()
    if previous is not None:
        _apply_figures(campaign.pk, previous.figures, -1)
    row, _ = ItemAgreement.objects.update_or_create(
        item_id=item_id,
        defaults={
            "campaign": campaign,
            "status": _status(result),
            "labels": _labels_json(result),
            "single_labels": result.single,
            "figures": figures,
            "distance": rules.distance,
            "count_tolerance": rules.count_tolerance,
            "computed_at": timezone.now(),
            "resolved_by": None,
            "resolved_at": None,
            "resolution": "",
        },
    )
    row.compared.set(annotations)
    _apply_figures(campaign.pk, figures, +1)
    if row.status == AgreementStatus.AGREED and settings.POINTS_AUTO_ACCEPT_AGREED:
        assignments_accept_agreed(
            assignment_ids=[a.assignment_id for a in annotations], note=AUTO_ACCEPT_NOTE
        )
    return row
