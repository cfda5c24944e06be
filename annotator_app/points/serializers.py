"""Points API shapes: a submission's envelope and an annotation with its labels.

The labels themselves are checked by services.points_clean_labels (one flat message per
problem, e.g. "labels[0].points[3].x: must be between 0 and 100 ..."), not here.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from annotator_app.catalog.selectors import image_media_url
from annotator_app.points.models import LabelAnnotation, PointsAnnotation
from annotator_app.points.selectors import label_molmo_text
from annotator_app.points.services import MAX_SECONDS

_PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
LABELS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["label"],
        "properties": {
            "label": {"type": "string", "maxLength": 200},
            "points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["x", "y"],
                    "properties": {"x": _PERCENT, "y": _PERCENT},
                },
                "description": "Every instance, in percent of the image width (x), height (y).",
            },
            "not_present": {"type": "boolean", "description": "True: the thing is absent."},
            "seconds": {"type": "number", "description": "Time spent on this label."},
        },
    },
}


@extend_schema_field(LABELS_SCHEMA)
class LabelsField(serializers.ListField):
    """Raw label objects; services.points_clean_labels names every problem precisely."""

    child = serializers.JSONField()


@extend_schema_serializer(component_name="PointsSubmitInput")
class SubmitInputSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(min_value=1)
    labels = LabelsField(allow_empty=True)
    active_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_SECONDS, required=False, allow_null=True
    )


@extend_schema_serializer(component_name="PointsAmendInput")
class AmendInputSerializer(serializers.Serializer):
    labels = LabelsField(allow_empty=True)


@extend_schema_serializer(component_name="PointsLabel")
class LabelOutputSerializer(serializers.ModelSerializer):
    not_present = serializers.SerializerMethodField()
    molmo_text = serializers.SerializerMethodField()

    class Meta:
        model = LabelAnnotation
        fields = ["label", "points", "count", "not_present", "collection_method", "seconds"]
        fields += ["molmo_text"]

    def get_not_present(self, label: LabelAnnotation) -> bool:
        return label.count == 0

    def get_molmo_text(self, label: LabelAnnotation) -> str:
        return label_molmo_text(label)


@extend_schema_serializer(component_name="PointsAnnotation")
class AnnotationOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="assignment.status", read_only=True)
    review_reason = serializers.CharField(source="assignment.review_reason", read_only=True)
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    image_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    labels = LabelOutputSerializer(many=True, read_only=True)

    class Meta:
        model = PointsAnnotation
        fields = ["id", "url", "assignment", "campaign", "image", "image_url", "annotator"]
        fields += ["status", "review_reason", "superseded", "created_at", "updated_at", "labels"]

    def get_image_url(self, annotation: PointsAnnotation) -> str:
        return image_media_url(image=annotation.image, request=self.context.get("request"))

    def get_url(self, annotation: PointsAnnotation) -> str:
        from django.urls import reverse

        path = reverse("points-api:annotation", kwargs={"annotation_id": annotation.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


@extend_schema_serializer(component_name="PointsAgreementFigures")
class AgreementFiguresSerializer(serializers.Serializer):
    name = serializers.CharField()
    items = serializers.IntegerField()
    items_agreed = serializers.IntegerField()
    items_agreed_pct = serializers.FloatField(allow_null=True)
    labels = serializers.IntegerField()
    labels_agreed = serializers.IntegerField()
    labels_agreed_pct = serializers.FloatField(allow_null=True)
    pairs = serializers.IntegerField()
    pairs_count_agreed = serializers.IntegerField()
    count_agreed_pct = serializers.FloatField(allow_null=True)
    mean_f1 = serializers.FloatField(allow_null=True)
    awaiting_review = serializers.IntegerField()


@extend_schema_serializer(component_name="PointsDecisionInput")
class DecisionInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["accept_all", "pick", "reject"])
    annotation = serializers.IntegerField(min_value=1, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
