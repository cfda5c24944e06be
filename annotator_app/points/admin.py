"""Django admin for points: submissions with their labels, agreements (read-only).

Points and agreement move only through the services; the admin shows them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from annotator_app.catalog.admin import ImageThumbnailColumn
from annotator_app.points.models import (
    AgreementTotals,
    ItemAgreement,
    LabelAnnotation,
    PointsAnnotation,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LabelInline(admin.TabularInline):
    model = LabelAnnotation
    fields = ("position", "label", "collection_method", "count", "points", "seconds")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PointsAnnotation)
class PointsAnnotationAdmin(ImageThumbnailColumn, ReadOnlyAdmin):
    list_display = ("id", "campaign", "image_thumbnail", "annotator", "superseded", "created_at")
    list_filter = ("campaign", "superseded")
    search_fields = ("annotator__username",)
    list_select_related = ("campaign", "image", "annotator")
    inlines = [LabelInline]


@admin.register(ItemAgreement)
class ItemAgreementAdmin(ReadOnlyAdmin):
    list_display = ("id", "campaign", "item", "status", "computed_at", "resolved_by")
    list_filter = ("status", "campaign")
    list_select_related = ("campaign", "item", "resolved_by")


@admin.register(AgreementTotals)
class AgreementTotalsAdmin(ReadOnlyAdmin):
    list_display = ("campaign", "annotator", "items", "labels", "labels_agreed", "pairs")
    list_filter = ("campaign",)
    list_select_related = ("campaign", "annotator")
