"""Django admin for AMA and CapQA (read-only): sessions with their rounds, failed rounds
with their reasons, the OCR cache, CapQA runs and pairs. Rows move only through the
services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from annotator_app.ama.models import AmaRound, AmaSession, CapQAPair, CapQARun, ImageOcr


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RoundInline(admin.TabularInline):
    model = AmaRound
    extra = 0
    can_delete = False
    fields = (
        "index",
        "status",
        "verdict",
        "question",
        "answer",
        "feedback",
        "caption_source",
        "failure_reason",
    )
    readonly_fields = fields


@admin.register(AmaSession)
class AmaSessionAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "annotator", "image", "status", "created_at", "accepted_at"]
    list_filter = ["status", "campaign"]
    inlines = [RoundInline]


@admin.register(AmaRound)
class AmaRoundAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "session",
        "index",
        "status",
        "verdict",
        "model_name",
        "caption_source",
        "created_at",
    ]
    list_filter = ["status", "verdict", "caption_source"]
    search_fields = ["question", "answer", "failure_reason"]


@admin.register(ImageOcr)
class ImageOcrAdmin(ReadOnlyAdmin):
    list_display = ["image", "engine", "milliseconds", "created_at"]


@admin.register(CapQARun)
class CapQARunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "campaign",
        "total",
        "processed",
        "failed",
        "pairs_kept",
        "pairs_rejected",
        "finished_at",
    ]


@admin.register(CapQAPair)
class CapQAPairAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "image", "question", "multi_turn", "model_name", "created_at"]
    list_filter = ["campaign", "multi_turn"]
    search_fields = ["question", "answer"]
