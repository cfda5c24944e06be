"""Helpers of the points tests: campaigns, leasing, submitting like the page does."""

from __future__ import annotations

import uuid
from typing import Any

API = "/api/v1/points"
PROMPTS = ["red square", "blue circle", "giraffe"]


def points_campaign(n_images: int = 2, tag: str = "pts", **fields: Any) -> Any:
    """A points campaign over catalogue rows of 64x48 images (no bytes needed)."""
    from tests.work.conftest import make_campaign

    fields.setdefault("collection_method", "counting")
    fields.setdefault("label_prompts", PROMPTS if fields["collection_method"] == "counting" else [])
    return make_campaign(n_images, tag, kind="points", **fields)


def lease(user: Any, campaign: Any = None) -> Any:
    from annotator_app.work.services import assignment_next

    assignment = assignment_next(user=user, kind="points", campaign=campaign)
    assert assignment is not None, "the test campaign has no item left for this user"
    return assignment


def label(name: str, *points: tuple[float, float], seconds: float = 3.0) -> dict[str, Any]:
    """One label as the page sends it: points in percent, or "not present" when none."""
    return {
        "label": name,
        "points": [{"x": x, "y": y} for x, y in points],
        "not_present": not points,
        "seconds": seconds,
    }


def answers(**by_label: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Counting answers for PROMPTS: keyword = prompt with _ for spaces."""
    return [label(name, *by_label.get(name.replace(" ", "_"), [])) for name in PROMPTS]


def submit(client: Any, assignment_id: int, labels: Any, key: str | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    body = {"assignment": assignment_id, "labels": labels, "active_seconds": 30}
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"{API}/annotations/", body, format="json", headers=headers, **extra)
