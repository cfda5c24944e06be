"""Input and output shapes of the AMA API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator_app.ama.models import FEEDBACK_MAX_CHARS, QUESTION_MAX_CHARS, AmaRound, AmaSession
from annotator_app.work.services import SKIP_REASON_MAX_CHARS
from pipelines.ama import SOURCE_LABELS

MAX_ACTIVE_SECONDS = 24 * 3600


class RoundOutputSerializer(serializers.ModelSerializer):
    caption_source_label = serializers.SerializerMethodField()
    seconds_to_answer = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = AmaRound
        fields = [
            "id", "index", "question", "status", "failure_reason", "attempts",
            "caption", "caption_source", "caption_source_label", "caption_model",
            "ocr_text", "ocr_engine", "ocr_instruction_like",
            "prompt_version", "model_name", "answer", "answer_problems",
            "verdict", "feedback", "caption_ms", "ocr_ms", "llm_ms", "seconds_to_answer",
            "created_at", "stage_started_at", "answered_at", "decided_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_caption_source_label(self, obj: AmaRound) -> str:
        return SOURCE_LABELS.get(obj.caption_source, "")


class SessionOutputSerializer(serializers.ModelSerializer):
    rounds = serializers.SerializerMethodField()
    campaign = serializers.CharField(source="campaign.name", read_only=True)
    assignment_status = serializers.CharField(source="assignment.status", read_only=True)

    class Meta:
        model = AmaSession
        fields = [
            "id", "status", "skip_reason", "campaign", "assignment", "assignment_status",
            "image", "annotator", "accepted_at", "created_at", "rounds",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(RoundOutputSerializer(many=True))
    def get_rounds(self, obj: AmaSession) -> list[dict[str, Any]]:
        rows = obj.rounds.order_by("index")
        return list(RoundOutputSerializer(rows, many=True).data)


class AskInputSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=QUESTION_MAX_CHARS, trim_whitespace=True)


class RejectInputSerializer(serializers.Serializer):
    feedback = serializers.CharField(max_length=FEEDBACK_MAX_CHARS, trim_whitespace=True)


class AcceptInputSerializer(serializers.Serializer):
    active_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_ACTIVE_SECONDS, required=False
    )


class SkipInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=SKIP_REASON_MAX_CHARS, trim_whitespace=True)
