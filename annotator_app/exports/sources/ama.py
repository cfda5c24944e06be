"""The AMA loop's datasets (annotator_app/ama): accepted QA pairs (pixmo-ask-model-
anything), their preference pairs (ours: chosen = the accepted answer, rejected = an
earlier answer with the feedback that rejected it), and CapQA (pixmo-cap-qa).

An AMA row belongs in the dataset once the annotator accepted an answer; "accepted"
(the default status) also wants a reviewer's acceptance of the assignment, "all" takes
work awaiting review too. `since` is the time the annotator accepted the answer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import JSONObject

from annotator_app.ama.models import AmaRound, CapQAPair, SessionStatus, Verdict
from annotator_app.exports.sources.base import ExportRequest, SqlSource, annotator_hash
from pipelines import pixmo_schemas

_HOW_AMA = (
    "An annotator picked an image and wrote a question. A caption model trained on "
    "PixMo-Cap (or a human PixMo-Cap caption of the image, when there is one) described "
    "the image and an OCR engine read its text; a language-only model answered from "
    "those. The annotator accepted the answer, or rejected it with written feedback and "
    "the model revised it, until accepted."
)


def _rounds(request: ExportRequest, verdict: str) -> QuerySet[AmaRound]:
    rows = AmaRound.objects.filter(
        verdict=verdict,
        session__status=SessionStatus.ACCEPTED,
        session__assignment__status__in=request.statuses,
    )
    if request.campaign_id is not None:
        rows = rows.filter(session__campaign_id=request.campaign_id)
    if request.since is not None:
        rows = rows.filter(session__accepted_at__gte=request.since)
    return rows.order_by("id")


class AmaSource(SqlSource):
    key = "ama"
    schema = pixmo_schemas.DATASETS["ama"]
    title = "PixMo-AskModelAnything (our collection)"
    what = "Questions annotators asked about images, with the answer they accepted."
    how_collected = _HOW_AMA
    column_notes: ClassVar[dict[str, str]] = {
        "question": "the annotator's question",
        "answer": "the answer the annotator accepted",
        "rounds": "every round of the loop: answer, verdict, feedback, evidence, model",
    }
    image_path = "session__image"
    row_group_rows = 16_384

    def rows(self, request: ExportRequest) -> QuerySet[AmaRound]:
        return _rounds(request, Verdict.ACCEPTED)

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"question": F("question"), "answer": F("answer")}
        if request.full:
            every = AmaRound.objects.filter(session=OuterRef("session")).order_by("index")
            detail = JSONObject(
                index=F("index"),
                question=F("question"),
                answer=F("answer"),
                verdict=F("verdict"),
                feedback=F("feedback"),
                caption_source=F("caption_source"),
                caption=F("caption"),
                ocr_text=F("ocr_text"),
                model_name=F("model_name"),
                prompt_version=F("prompt_version"),
            )
            fields |= {
                "campaign": F("session__campaign__name"),
                "annotator": annotator_hash("session__annotator_id"),
                "accepted_at": F("session__accepted_at"),
                "status": F("session__assignment__status"),
                "rounds": ArraySubquery(every.values(detail=detail)),
            }
        return fields


class PreferencesSource(SqlSource):
    key = "preferences"
    schema = pixmo_schemas.DATASETS["preferences"]
    title = "PixMo-AMA preference pairs (ours)"
    what = (
        "Preference pairs from the AMA loop: for each answer an annotator rejected, the "
        "answer they finally accepted (chosen), the rejected one, and their feedback. Not "
        "a published PixMo set; the columns are ours."
    )
    how_collected = _HOW_AMA
    column_notes: ClassVar[dict[str, str]] = {
        "chosen": "the answer the annotator accepted",
        "rejected": "an earlier answer of the same question",
        "feedback": "why the annotator rejected it",
    }
    image_path = "session__image"
    row_group_rows = 16_384

    def rows(self, request: ExportRequest) -> QuerySet[AmaRound]:
        return _rounds(request, Verdict.REJECTED)

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        chosen = AmaRound.objects.filter(session=OuterRef("session"), verdict=Verdict.ACCEPTED)
        fields: dict[str, Any] = {
            "question": F("question"),
            "chosen": Subquery(chosen.values("answer")[:1]),
            "rejected": F("answer"),
            "feedback": F("feedback"),
        }
        if request.full:
            fields |= {
                "campaign": F("session__campaign__name"),
                "annotator": annotator_hash("session__annotator_id"),
                "chosen_round": Subquery(chosen.values("index")[:1]),
                "rejected_round": F("index"),
                "caption_source": F("caption_source"),
                "model_name": F("model_name"),
                "prompt_version": F("prompt_version"),
            }
        return fields


class CapQASource(SqlSource):
    key = "capqa"
    schema = pixmo_schemas.DATASETS["capqa"]
    title = "PixMo-CapQA (synthetic, from our captions)"
    what = (
        "Question-answer pairs a language-only model wrote from our accepted captions "
        "(it never saw the image); multi-turn items hold [USER] ... [ASSISTANT] ... "
        "markers inside `question`."
    )
    how_collected = (
        "For each accepted PixMo-Cap caption, a language-only model was prompted with a "
        "varying topic and writing style to write questions and answers about the image "
        "the caption describes; pairs were validated and deduplicated per image."
    )
    column_notes: ClassVar[dict[str, str]] = {
        "question": "the question (multi-turn: [USER] ... [ASSISTANT] ... markers)",
        "answer": "the answer",
        "campaign": "the cap campaign whose captions the pairs came from",
    }
    image_path = "image"
    row_group_rows = 16_384

    def rows(self, request: ExportRequest) -> QuerySet[CapQAPair]:
        rows = CapQAPair.objects.all()
        if request.campaign_id is not None:
            rows = rows.filter(campaign_id=request.campaign_id)
        if request.since is not None:
            rows = rows.filter(created_at__gte=request.since)
        return rows.order_by("id")

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {"question": F("question"), "answer": F("answer")}
        if request.full:
            fields |= {
                "campaign": F("campaign__name"),
                "multi_turn": F("multi_turn"),
                "topic": F("topic"),
                "style": F("style"),
                "source_kind": F("source_kind"),
                "model_name": F("model_name"),
                "prompt_version": F("prompt_version"),
                "created_at": F("created_at"),
            }
        return fields
