"""Thumbnails: made once from the stored image, served through the permission check."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.test import Client
from PIL import Image as PILImage

from annotator_app.catalog.services import image_import_bytes, thumbnail_storage_key
from tests.catalog.conftest import animation, make_image, stored_files

pytestmark = pytest.mark.django_db


def test_a_thumbnail_is_made_on_first_view_and_kept(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    image = image_import_bytes(data=make_image("PNG", size=(1200, 300))).image
    assert image is not None
    client = Client()
    client.force_login(cast.owner)
    url = f"/media/thumbnails/{image.pk}.jpg"
    first = client.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    assert first["X-Content-Type-Options"] == "nosniff"
    thumb = PILImage.open(io.BytesIO(b"".join(first.streaming_content)))
    assert thumb.format == "JPEG" and thumb.size == (160, 40)
    key = thumbnail_storage_key(image=image)
    assert key in stored_files(media_root)
    again = client.get(url)
    assert again.status_code == 200 and stored_files(media_root).count(key) == 1


def test_animated_and_transparent_images_get_a_still_thumbnail(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    image = image_import_bytes(data=animation("PNG", frames=5, size=(40, 20))).image
    assert image is not None
    client = Client()
    client.force_login(cast.reviewer)
    response = client.get(f"/media/thumbnails/{image.pk}.jpg")
    assert response.status_code == 200
    assert PILImage.open(io.BytesIO(b"".join(response.streaming_content))).size == (40, 20)


def test_thumbnails_are_refused_to_strangers_and_unknown_images(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    image = image_import_bytes(data=make_image("PNG")).image
    assert image is not None
    anonymous = Client().get(f"/media/thumbnails/{image.pk}.jpg")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    client = Client()
    client.force_login(cast.owner)
    assert client.get(f"/media/thumbnails/{image.pk + 999}.jpg").status_code == 404
    # Nothing was made for the refused requests.
    assert [f for f in stored_files(media_root) if f.startswith("thumbs/")] == []
    # A thumbnail key for an image that does not exist is not served either.
    assert client.get("/media/thumbs/00/00/" + "0" * 64 + "-160.jpg").status_code == 404
