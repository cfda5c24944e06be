"""Django admin for the catalog: find images by hash or URL, filter, preview."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from annotator_app.catalog.models import Image, Topic
from annotator_app.catalog.selectors import image_media_url


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("short_sha", "format", "width", "height", "size_bytes", "created_at")
    list_filter = ("topics", "format")
    search_fields = ("sha256", "source_url")
    filter_horizontal = ("topics",)
    readonly_fields = (
        "preview",
        "sha256",
        "width",
        "height",
        "format",
        "mime",
        "size_bytes",
        "source_url",
        "storage_key",
        "created_at",
        "created_by",
    )
    fields = ("preview", *readonly_fields[1:], "topics")

    @admin.display(description="sha256")
    def short_sha(self, image: Image) -> str:
        return image.sha256[:16]

    @admin.display(description="preview")
    def preview(self, image: Image) -> str:
        # A plain <img> through the permission-checked media view: no script, no
        # inline style (the CSP forbids both), size bounded by attributes.
        if not image.pk:
            return "-"
        return format_html(
            '<img src="{}" alt="image {}" width="{}" loading="lazy">',
            image_media_url(image=image),
            image.sha256[:12],
            min(image.width, 320),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Images enter only through the import services, which check their content.
        return False
