"""PixMo-Points: per image and annotator, labels with the points of every instance.

A `PointsAnnotation` is one annotator's submission for one assignment; its
`LabelAnnotation` rows hold, per label (referring expression), the points in percent of
the image's width and height (0..100), their count (0 = "not present"), the collection
method and the seconds spent. With overlap > 1 the item's annotations are compared once
all are in (`ItemAgreement`, see agreement.py); running totals per campaign and per
annotator feed the dashboard without scanning annotations.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotator_app.catalog.models import Image
from annotator_app.work.models import Assignment, Campaign, CollectionMethod, WorkItem

LABEL_MAX_CHARS = 200


class PointsAnnotation(models.Model):
    """One annotator's points for one image: stored whole, in one transaction."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="points_annotation"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="points_annotations"
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="points_annotations"
    )
    item = models.ForeignKey(WorkItem, on_delete=models.PROTECT, related_name="points_annotations")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="points_annotations")
    idempotency_key = models.CharField(max_length=64, unique=True)
    # Set when a reviewer chose another annotator's points for this image: the work is
    # accepted (the annotator is not at fault) but left out of the dataset.
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["annotator", "-created_at"], name="points_history"),
            models.Index(fields=["item"], name="points_item"),
        ]

    def __str__(self) -> str:
        return f"points {self.pk} (assignment {self.assignment_id})"


class LabelAnnotation(models.Model):
    """One label of a submission: every instance pointed at, or none ("not present")."""

    annotation = models.ForeignKey(
        PointsAnnotation, on_delete=models.CASCADE, related_name="labels"
    )
    position = models.PositiveSmallIntegerField(help_text="Order on the annotator's page.")
    label = models.CharField(max_length=LABEL_MAX_CHARS)
    # The label folded for comparison across annotators (case, spacing, Unicode form).
    label_key = models.CharField(max_length=LABEL_MAX_CHARS)
    collection_method = models.CharField(max_length=8, choices=CollectionMethod.choices)
    # [{"x": float, "y": float}, ...] in percent of width/height, in the order placed.
    points = models.JSONField(default=list)
    count = models.PositiveIntegerField()
    seconds = models.FloatField(default=0.0, help_text="Time spent on this label.")

    class Meta:
        ordering = ["annotation_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["annotation", "label_key"], name="points_label_once"),
            models.UniqueConstraint(
                fields=["annotation", "position"], name="points_label_position"
            ),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="points_seconds_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.label!r}: {self.count}"

    @property
    def point_pairs(self) -> list[tuple[float, float]]:
        return [(float(p["x"]), float(p["y"])) for p in self.points]


class AgreementStatus(models.TextChoices):
    AGREED = "agreed", "Agreed"
    DISAGREED = "disagreed", "Disagreed: needs review"
    UNMATCHED = "unmatched", "No label in common: needs review"
    RESOLVED = "resolved", "Resolved by a reviewer"
    REOPENED = "reopened", "Reopened: an annotation was rejected"


# Statuses that put an item into its campaign's points review queue.
NEEDS_REVIEW = (AgreementStatus.DISAGREED, AgreementStatus.UNMATCHED)


class ItemAgreement(models.Model):
    """The comparison of an item's annotations once all `overlap` of them are in.

    One row per item, replaced when the item completes again (after a rejection);
    `figures` keeps what this item added to the running totals so a recomputation can
    take it back out.
    """

    item = models.OneToOneField(WorkItem, on_delete=models.CASCADE, related_name="points_agreement")
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="points_agreements"
    )
    status = models.CharField(max_length=10, choices=AgreementStatus.choices)
    compared = models.ManyToManyField(PointsAnnotation, related_name="agreements")
    # [{key, label, counts: {annotation id: n}, agreed, pairs: [{a, b, count_a, count_b,
    #   matched, mean_distance, f1, count_agreed, agreed}]}]
    labels = models.JSONField(default=list)
    single_labels = models.JSONField(default=dict, help_text="Labels only one annotator gave.")
    figures = models.JSONField(default=dict)
    distance = models.FloatField(help_text="The matching distance used, % of the diagonal.")
    count_tolerance = models.PositiveSmallIntegerField()
    computed_at = models.DateTimeField()
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["campaign", "status", "computed_at"], name="points_queue")]

    def __str__(self) -> str:
        return f"agreement of item {self.item_id} ({self.status})"


class AgreementTotals(models.Model):
    """Running sums of agreement per campaign (annotator null) or per campaign and annotator.

    Updated by delta in the transaction that stores an ItemAgreement, so the dashboard
    reads one row per campaign and per annotator.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    items = models.IntegerField(default=0)  # compared items (campaign rows only)
    items_agreed = models.IntegerField(default=0)
    labels = models.IntegerField(default=0)  # labels given by >= 2 annotators
    labels_agreed = models.IntegerField(default=0)
    pairs = models.IntegerField(default=0)  # (label, annotator pair) comparisons
    pairs_agreed = models.IntegerField(default=0)
    pairs_count_agreed = models.IntegerField(default=0)
    f1_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "annotator"],
                name="points_totals_once",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"agreement totals {self.campaign_id}/{self.annotator_id}"
