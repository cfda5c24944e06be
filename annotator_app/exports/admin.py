"""Django admin: exports are listed read-only (they are started from /exports/)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from annotator_app.exports.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "format", "full", "status", "rows_done", "created_at"]
    list_filter = ["dataset", "status", "format"]
    readonly_fields = [f.name for f in Export._meta.get_fields() if hasattr(f, "attname")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
