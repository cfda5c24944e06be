"""Work fixtures: catalogue rows for many images (bulk, no bytes) and campaigns."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest


def make_images(n: int, tag: str = "img") -> list[Any]:
    """`n` catalogue rows in one statement; the engine never reads the image bytes."""
    from annotator_app.catalog.models import Image

    rows = []
    for i in range(n):
        sha = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
        rows.append(
            Image(
                sha256=sha,
                width=64,
                height=48,
                format="png",
                mime="image/png",
                size_bytes=100,
                storage_key=f"images/{sha[:2]}/{sha[2:4]}/{sha}.png",
            )
        )
    return Image.objects.bulk_create(rows, batch_size=5000)


def make_campaign(n_images: int = 3, tag: str = "c", **fields: Any) -> Any:
    from annotator_app.work.services import campaign_create

    fields.setdefault("kind", "cap")
    return campaign_create(name=f"campaign {tag}", images=make_images(n_images, tag), **fields)


@pytest.fixture
def campaign(db):  # type: ignore[no-untyped-def]
    return make_campaign(3, "fixture")
