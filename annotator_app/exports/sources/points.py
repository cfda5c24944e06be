"""pixmo-points: one row per accepted label (annotator_app/points/selectors.py).

Points are stored as the published type already (percent of width/height, floats);
"not present" labels are rows with empty points and count 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import F, QuerySet

from annotator_app.exports.sources.base import ExportRequest, SqlSource, annotator_hash
from annotator_app.points.models import LabelAnnotation
from annotator_app.points.selectors import label_annotations_for_export
from annotator_app.work.models import Campaign
from pipelines import pixmo_schemas


class PointsSource(SqlSource):
    key = "points"
    schema = pixmo_schemas.DATASETS["points"]
    title = "PixMo-Points (our collection)"
    what = (
        "Referring expressions with a point on every instance of each, written in percent "
        "of the image's width and height; expressions that are not in the image have no "
        "points and count 0."
    )
    how_collected = (
        "Annotators named something in the image (pointing) or answered a campaign's label "
        "prompts (counting), then clicked every instance. Images shown to several annotators "
        "were compared; disagreements went to a reviewer, who accepted one annotation. Only "
        "accepted work is exported unless the snapshot's filters say otherwise."
    )
    column_notes: ClassVar[dict[str, str]] = {
        "image_url": "where the image can be fetched",
        "image_sha256": "SHA-256 of the image bytes",
        "points": "x, y in percent of width/height (0..100), in the order placed",
        "count": "number of instances (0: not present)",
        "label": "the referring expression, as typed",
        "collection_method": '"pointing" or "counting"',
        "annotator": "anonymised annotator id (stable across snapshots)",
        "seconds": "time spent on this label",
    }
    image_path = "annotation__image"
    row_group_rows = 65_536
    shard_rows = 1_048_576

    def rows(self, request: ExportRequest) -> QuerySet[LabelAnnotation]:
        campaign = Campaign.objects.get(pk=request.campaign_id) if request.campaign_id else None
        return label_annotations_for_export(
            campaign=campaign, since=request.since, statuses=request.statuses
        )

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "points": F("points"),
            "count": F("count"),
            "label": F("label"),
            "collection_method": F("collection_method"),
        }
        if request.full:
            fields |= {
                "campaign": F("annotation__campaign__name"),
                "annotator": annotator_hash("annotation__annotator_id"),
                "seconds": F("seconds"),
                "image_width": F("annotation__image__width"),
                "image_height": F("annotation__image__height"),
                "submitted_at": F("annotation__assignment__submitted_at"),
                "status": F("annotation__assignment__status"),
            }
        return fields
