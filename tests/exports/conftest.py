from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog.conftest import moto_endpoint, s3  # noqa: F401 (moto's S3 fixtures)


@pytest.fixture(autouse=True)
def export_media(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Each test has its own media folder and export root; no image base URL."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.EXPORT_IMAGE_BASE_URL = ""
    settings.AWS_STORAGE_BUCKET_NAME = None
    settings.EXPORT_S3_BUCKET = None
    return root
