"""Helpers of the capture tests: a short cap campaign, leasing, uploading like the page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.captions.audio_fixtures import speech_webm

MIN_SECONDS = 4
MAX_SECONDS = 8


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def cap_campaign(n_images: int = 2, tag: str = "cap", **fields: Any) -> Any:
    """A PixMo-Cap campaign with a short minimum (4 s) and maximum (8 s)."""
    from tests.work.conftest import make_campaign

    fields.setdefault("min_seconds", MIN_SECONDS)
    fields.setdefault("max_seconds", MAX_SECONDS)
    fields.setdefault("guidelines", "Speak clearly.\nMention every sign.")
    return make_campaign(n_images, tag, kind="cap", **fields)


def lease(user: Any) -> Any:
    from annotator_app.work.services import assignment_next

    assignment = assignment_next(user=user, kind="cap")
    assert assignment is not None, "the test campaign has no item left for this user"
    return assignment


def upload(client: Any, assignment_id: int, data: bytes, key: str | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """POST a recording like the page does: multipart form plus the Idempotency-Key header."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {
        "assignment": str(assignment_id),
        "audio": SimpleUploadedFile("recording.webm", data, content_type="audio/webm"),
        "active_seconds": "42",
    }
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(
        "/api/v1/captions/recordings/", form, format="multipart", headers=headers, **extra
    )


def good_audio() -> bytes:
    return speech_webm(5)
