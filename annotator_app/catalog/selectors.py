"""Catalog reads: topics, images, and the URL an image is shown through."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse

from annotator_app.catalog.media_access import MediaGrant
from annotator_app.catalog.models import Image, Topic


def topic_list() -> QuerySet[Topic]:
    return Topic.objects.all()


def image_list(*, topic_slug: str | None = None) -> QuerySet[Image]:
    """Every image, newest first, optionally only those of one topic."""
    images = Image.objects.prefetch_related("topics")
    if topic_slug:
        images = images.filter(topics__slug=topic_slug)
    return images


def image_get(*, image_id: int) -> Image | None:
    return Image.objects.prefetch_related("topics").filter(pk=image_id).first()


def image_media_url(*, image: Image, request: HttpRequest | None = None) -> str:
    """The permission-checked URL that shows this image (absolute when given a request).

    It always points at our media view, never straight at storage: the view checks the
    reader first, then streams the file or redirects to a short-lived signed S3 URL.
    """
    path = reverse("media", kwargs={"key": image.storage_key})
    return request.build_absolute_uri(path) if request is not None else path


def image_media_grant(user: Any, key: str) -> MediaGrant | None:
    """Media checker for "images/": any logged-in user may view a catalogued image."""
    if not getattr(user, "is_authenticated", False):
        return None
    image = Image.objects.filter(storage_key=key).only("mime", "sha256", "format").first()
    if image is None:
        return None
    extension = "jpg" if image.format == "jpeg" else image.format
    return MediaGrant(content_type=image.mime, filename=f"{image.sha256}.{extension}")


def image_thumbnail_url(*, image: Image) -> str:
    """The permission-checked URL of the image's small JPEG thumbnail (made on first view)."""
    return reverse("image-thumbnail", kwargs={"image_id": image.pk})


def thumbnail_media_grant(user: Any, key: str) -> MediaGrant | None:
    """Media checker for "thumbs/": whoever may view the image may view its thumbnail."""
    if not getattr(user, "is_authenticated", False):
        return None
    sha = key.rsplit("/", 1)[-1].split("-", 1)[0]
    if not Image.objects.filter(sha256=sha).exists():
        return None
    return MediaGrant(content_type="image/jpeg", filename=key.rsplit("/", 1)[-1])


def topics_by_slug(*, slugs: list[str]) -> list[Topic]:
    return list(Topic.objects.filter(slug__in=slugs))
