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


def topics_by_slug(*, slugs: list[str]) -> list[Topic]:
    return list(Topic.objects.filter(slug__in=slugs))
