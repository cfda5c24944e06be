"""Django admin for the caption pipeline: recordings, transcripts, captions, summaries.

Pipeline output is read-only here (the pipeline writes it). The "problem" filter (and
/admin/captions/recording/failures/) lists failed, flagged and stuck recordings; the
"reprocess" actions restart them through the same services as `manage.py reprocess`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from annotator_app.accounts.permissions import is_admin
from annotator_app.captions.maintenance import (
    ReprocessError,
    recording_reprocess,
    summary_reprocess,
)
from annotator_app.captions.models import (
    CleanedCaption,
    ImageSummary,
    Recording,
    RecordingStatus,
    Transcript,
)
from annotator_app.captions.pipeline import STAGE_MARGIN_SECONDS, stage_time_limit
from annotator_app.catalog.admin import ImageThumbnailColumn


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)


def stuck_filter(now: Any = None) -> Q:
    """Recordings waiting or running for longer than the sweeper tolerates."""
    now = now or timezone.now()
    waiting = now - timedelta(seconds=settings.PIPELINE_STUCK_SECONDS)
    query = Q(
        status__in=(RecordingStatus.STORED, RecordingStatus.TRANSCRIBED),
        stage_started_at__lt=waiting,
    )
    for status in (RecordingStatus.TRANSCRIBING, RecordingStatus.CLEANING):
        limit = now - timedelta(seconds=stage_time_limit(status) + STAGE_MARGIN_SECONDS)
        query |= Q(status=status, stage_started_at__lt=limit)
    return query


class ProblemFilter(admin.SimpleListFilter):
    title = "problem"
    parameter_name = "problem"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("any", "failed, flagged or stuck"),
            ("failed", "failed"),
            ("flagged", "flagged (ASR output)"),
            ("fallback", "caption fell back to rules"),
            ("stuck", "stuck"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "failed":
            return queryset.filter(status=RecordingStatus.FAILED)
        if value == "flagged":
            return queryset.filter(status=RecordingStatus.FLAGGED)
        if value == "fallback":
            return queryset.filter(transcript__cleaned__used_fallback=True)
        if value == "stuck":
            return queryset.filter(stuck_filter())
        if value == "any":
            problems = Q(status__in=(RecordingStatus.FAILED, RecordingStatus.FLAGGED))
            return queryset.filter(problems | stuck_filter())
        return queryset


def _reprocess(request: HttpRequest, ids: list[int], stage: str | None, admin_: Any) -> None:
    for rid in ids:
        try:
            admin_.message_user(request, recording_reprocess(recording_id=rid, stage=stage))
        except ReprocessError as exc:
            admin_.message_user(request, str(exc), level=messages.ERROR)


@admin.register(Recording)
class RecordingAdmin(ImageThumbnailColumn, ReadOnlyAdmin):
    list_display = (
        "id",
        "annotator",
        "campaign",
        "image_thumbnail",
        "status",
        "attempts",
        "stage_started_at",
        "duration_seconds",
        "failure_reason",
    )
    list_filter = (ProblemFilter, "status", "campaign")
    search_fields = ("id", "annotator__username", "storage_key", "failure_reason")
    list_select_related = ("annotator", "campaign", "image")
    date_hierarchy = "created_at"
    actions = ("reprocess_resume", "reprocess_asr", "reprocess_clean")

    def get_urls(self) -> list[URLPattern]:
        failures = path(
            "failures/",
            self.admin_site.admin_view(self.failures_view),
            name="captions_recording_failures",
        )
        return [failures, *super().get_urls()]

    def failures_view(self, request: HttpRequest) -> HttpResponseRedirect:
        """The failures view: the change list filtered to failed, flagged and stuck rows."""
        url = reverse("admin:captions_recording_changelist")
        return HttpResponseRedirect(f"{url}?problem=any")

    @admin.action(description="Reprocess from where it stopped", permissions=["reprocess"])
    def reprocess_resume(self, request: HttpRequest, queryset: QuerySet[Recording]) -> None:
        _reprocess(request, list(queryset.values_list("id", flat=True)), None, self)

    @admin.action(description="Reprocess: transcribe again (ASR)", permissions=["reprocess"])
    def reprocess_asr(self, request: HttpRequest, queryset: QuerySet[Recording]) -> None:
        _reprocess(request, list(queryset.values_list("id", flat=True)), "asr", self)

    @admin.action(description="Reprocess: clean again (LLM)", permissions=["reprocess"])
    def reprocess_clean(self, request: HttpRequest, queryset: QuerySet[Recording]) -> None:
        _reprocess(request, list(queryset.values_list("id", flat=True)), "clean", self)


@admin.register(Transcript)
class TranscriptAdmin(ReadOnlyAdmin):
    list_display = ("id", "recording", "flagged", "language", "model_name", "created_at")
    list_filter = ("flagged", "model_name")
    search_fields = ("text", "recording__id")


@admin.register(CleanedCaption)
class CleanedCaptionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "transcript",
        "used_fallback",
        "flagged",
        "llm_attempts",
        "prompt_version",
        "model_name",
    )
    list_filter = ("used_fallback", "flagged", "prompt_version", "model_name")
    search_fields = ("text", "rule_text")


@admin.register(ImageSummary)
class ImageSummaryAdmin(ImageThumbnailColumn, ReadOnlyAdmin):
    list_display = (
        "id",
        "campaign",
        "image_thumbnail",
        "status",
        "attempts",
        "failure_reason",
        "updated_at",
    )
    list_filter = ("status", "campaign")
    list_select_related = ("campaign", "image")
    search_fields = ("text", "failure_reason")
    actions = ("reprocess",)

    @admin.action(description="Reprocess: summarise again", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[ImageSummary]) -> None:
        for sid in queryset.values_list("id", flat=True):
            self.message_user(request, summary_reprocess(summary_id=sid))
