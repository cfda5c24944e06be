"""pixmo-cap: one row per image and campaign with a finished summary caption.

`caption` is the LLM caption summarising the image's cleaned transcripts (the
`ImageSummary`); `transcripts` are the ASR transcripts of its accepted recordings (or
of every unrejected one with status "all"), oldest first. The full variant adds the
recordings themselves: annotator (anonymised), audio key, duration, raw transcript,
cleaned caption, ASR and cleaning flags, timings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Exists, F, OuterRef, QuerySet, TextField
from django.db.models.functions import Cast, JSONObject

from annotator_app.captions.models import ImageSummary, Recording, SummaryStatus
from annotator_app.exports.sources.base import ExportRequest, SqlSource, annotator_hash
from pipelines import pixmo_schemas


class CapSource(SqlSource):
    key = "cap"
    schema = pixmo_schemas.DATASETS["cap"]
    title = "PixMo-Cap (our collection)"
    what = (
        "Dense image captions from spoken descriptions: per image, a caption written by a "
        "language model from every annotator's description, and the transcripts themselves."
    )
    how_collected = (
        "Annotators described each image out loud for at least a campaign's minimum time, "
        "guided by seven questions (first glance, objects and counts, text, positions, "
        "subtle details, background, style and colour). The audio was transcribed by "
        "faster-whisper; a language-only model removed speech artefacts from each "
        "transcript and wrote one caption summarising all of them. Reviewers accepted or "
        "rejected each recording; by default only accepted recordings are exported."
    )
    column_notes: ClassVar[dict[str, str]] = {
        "image_url": "where the image can be fetched",
        "caption": "the language model's caption summarising the transcripts",
        "transcripts": "the ASR transcripts of the spoken descriptions, oldest first",
        "recordings": "per recording: annotator (anonymised), audio key, raw transcript, "
        "cleaned caption, flags, timings, and the live guidance's coverage of the seven "
        "questions at submit (JSON text, null when live guidance was off)",
    }
    image_path = "image"
    row_group_rows = 8_192
    shard_rows = 131_072

    def _recordings(self, request: ExportRequest) -> QuerySet[Recording]:
        return Recording.objects.filter(
            campaign=OuterRef("campaign"),
            image=OuterRef("image"),
            assignment__status__in=request.statuses,
            transcript__isnull=False,
        ).order_by("id")

    def rows(self, request: ExportRequest) -> QuerySet[ImageSummary]:
        rows = ImageSummary.objects.filter(status=SummaryStatus.DONE).filter(
            Exists(self._recordings(request))
        )
        if request.campaign_id is not None:
            rows = rows.filter(campaign_id=request.campaign_id)
        if request.since is not None:
            rows = rows.filter(created_at__gte=request.since)
        return rows.order_by("id")

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        recordings = self._recordings(request)
        fields: dict[str, Any] = {
            "caption": F("text"),
            "transcripts": ArraySubquery(recordings.values("transcript__text")),
        }
        if request.full:
            detail = JSONObject(
                annotator=annotator_hash("annotator_id"),
                audio=F("storage_key"),
                duration_seconds=F("duration_seconds"),
                mime_type=F("mime_type"),
                transcript=F("transcript__text"),
                cleaned_caption=F("transcript__cleaned__text"),
                asr_model=F("transcript__model_name"),
                asr_flagged=F("transcript__flagged"),
                asr_flags=F("transcript__flag_reasons"),
                caption_flagged=F("transcript__cleaned__flagged"),
                caption_flags=F("transcript__cleaned__flag_reasons"),
                caption_used_fallback=F("transcript__cleaned__used_fallback"),
                active_seconds=F("assignment__active_seconds"),
                submitted_at=F("assignment__submitted_at"),
                status=F("assignment__status"),
                live_coverage=Cast("live_coverage", TextField()),
            )
            fields |= {
                "campaign": F("campaign__name"),
                "summary_model": F("model_name"),
                "summary_flagged": F("flagged"),
                "recordings": ArraySubquery(recordings.values(detail=detail)),
            }
        return fields
