"""Django admin for the catalog: find images by hash or URL, filter, preview, import.

Image lists show a thumbnail per row (through the permission-checked media view); the
"Import images" button opens the browser import (admin_import.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from annotator_app.catalog import admin_import
from annotator_app.catalog.models import Image, ImportJob, Topic
from annotator_app.catalog.selectors import image_media_url, image_thumbnail_url

THUMBNAIL_LIST_SIDE = 64


def thumbnail_html(image: Image | None) -> str:
    """A small <img> of the image for admin lists: lazy, sized by attributes (the CSP
    forbids inline styles), served by the thumbnail view."""
    if image is None or not image.pk:
        return "-"
    scale = THUMBNAIL_LIST_SIDE / max(image.width, image.height, 1)
    return format_html(
        '<img class="admin-thumbnail" src="{}" alt="image {}" width="{}" height="{}" '
        'loading="lazy">',
        image_thumbnail_url(image=image),
        image.sha256[:12],
        max(round(image.width * scale), 1),
        max(round(image.height * scale), 1),
    )


class ImageThumbnailColumn:
    """For admins of rows with an `image`: list "image_thumbnail" in list_display."""

    @admin.display(description="image", ordering="image")
    def image_thumbnail(self, obj: Any) -> str:
        return thumbnail_html(obj.image)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    change_list_template = "admin/catalog/image/change_list.html"
    list_display = (
        "thumbnail",
        "short_sha",
        "format",
        "width",
        "height",
        "size_bytes",
        "created_at",
    )
    list_display_links = ("thumbnail", "short_sha")
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

    @admin.display(description="image")
    def thumbnail(self, image: Image) -> str:
        return thumbnail_html(image)

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

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        own: list[URLPattern] = [
            path(
                "import/",
                wrap(partial(admin_import.import_form_view, self)),
                name="catalog_image_import",
            ),
            path(
                "import/<int:job_id>/",
                wrap(partial(admin_import.import_job_view, self)),
                name="catalog_image_import_job",
            ),
            path(
                "import/<int:job_id>/status/",
                wrap(partial(admin_import.import_job_status_view, self)),
                name="catalog_image_import_status",
            ),
        ]
        return own + super().get_urls()


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Browser imports: who started them, how far they got (read-only)."""

    list_display = ("id", "status", "progress", "counts_text", "created_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("created_by",)

    @admin.display(description="progress")
    def progress(self, job: ImportJob) -> str:
        url = reverse("admin:catalog_image_import_job", kwargs={"job_id": job.pk})
        total = "?" if job.total is None else job.total
        return format_html('<a href="{}">{} of {}</a>', url, job.done, total)

    @admin.display(description="imported / duplicate / rejected")
    def counts_text(self, job: ImportJob) -> str:
        counts = job.counts
        return f"{counts['imported']} / {counts['duplicate']} / {counts['rejected']}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
