"""Captions API shapes: the upload form and a recording with its processing state."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from annotator_app.captions.models import Recording
from annotator_app.captions.progress import recording_progress
from annotator_app.captions.selectors import (
    llm_start_note,
    recording_audio_url,
    recording_texts,
)
from annotator_app.captions.services import MAX_ACTIVE_SECONDS
from annotator_app.catalog.selectors import image_media_url


@extend_schema_serializer(component_name="CaptionsRecordingUpload")
class RecordingUploadSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(min_value=1)
    # Empty files pass here so the service can say "the audio file is empty".
    audio = serializers.FileField(allow_empty_file=True, use_url=False)
    active_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_ACTIVE_SECONDS, required=False, allow_null=True
    )


@extend_schema_serializer(component_name="CaptionsRecordingStage")
class StageSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    state = serializers.ChoiceField(choices=["done", "current", "waiting", "failed", "flagged"])


@extend_schema_serializer(component_name="CaptionsRecordingProgress")
class ProgressSerializer(serializers.Serializer):
    stages = StageSerializer(many=True)
    current = serializers.CharField(allow_null=True)
    estimate_seconds = serializers.IntegerField(allow_null=True)
    note = serializers.CharField(allow_blank=True)


@extend_schema_serializer(component_name="CaptionsRecording")
class RecordingOutputSerializer(serializers.ModelSerializer):
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    url = serializers.SerializerMethodField()
    audio_url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    campaign_name = serializers.CharField(source="campaign.name", read_only=True)
    transcript = serializers.SerializerMethodField()
    caption = serializers.SerializerMethodField()
    processing_note = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = ["id", "assignment", "campaign", "campaign_name", "image", "image_url"]
        fields += ["status", "status_label", "failure_reason", "duration_seconds"]
        fields += ["mime_type", "size_bytes", "sha256", "created_at", "url", "audio_url"]
        fields += ["transcript", "caption", "processing_note", "progress"]
        fields += ["live_coverage"]  # P12: coverage of the live text at submit, or null

    def _request(self) -> Any:
        return self.context.get("request")

    def get_url(self, recording: Recording) -> str:
        from django.urls import reverse

        path = reverse("captions-api:recording-detail", kwargs={"recording_id": recording.pk})
        request = self._request()
        return request.build_absolute_uri(path) if request is not None else path

    def get_audio_url(self, recording: Recording) -> str:
        return recording_audio_url(recording=recording, request=self._request())

    def get_image_url(self, recording: Recording) -> str:
        return image_media_url(image=recording.image, request=self._request())

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_transcript(self, recording: Recording) -> str | None:
        return recording_texts(recording=recording).transcript

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_caption(self, recording: Recording) -> str | None:
        return recording_texts(recording=recording).caption

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_processing_note(self, recording: Recording) -> str | None:
        """Why the caption is slow to come: the local LLM's first start, with its progress."""
        return llm_start_note(recording=recording)

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, recording: Recording) -> dict[str, Any]:
        """The stages (uploaded, transcribing, cleaning, summary) and the expected wait."""
        return dict(ProgressSerializer(recording_progress(recording=recording)).data)
