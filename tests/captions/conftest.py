"""Fixtures of the capture tests (none autouse: the pipeline tests here have their own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.captions.capture_helpers import cap_campaign


@pytest.fixture
def capture_media(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Each test stores into its own empty folder, so "nothing stored" is checkable."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    return root


@pytest.fixture
def capture_campaign(db):  # type: ignore[no-untyped-def]
    return cap_campaign()
