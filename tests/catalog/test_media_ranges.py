"""Byte ranges on /media/ (players seek with them), and that they bypass no check."""

from __future__ import annotations

import pytest
from django.test import Client

from annotator_app.catalog.ranges import RangeNotSatisfiable, requested_range
from annotator_app.catalog.services import image_import_bytes
from tests.catalog.conftest import make_image

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=5-3", None),  # not a range: ignored, the whole file goes
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_headers_are_read_as_the_rfc_says(header, expected) -> None:  # type: ignore[no-untyped-def]
    assert requested_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_ranges_past_the_end_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_range(header, 1000)


def test_media_answers_a_range_with_206_and_only_those_bytes(cast) -> None:  # type: ignore[no-untyped-def]
    data = make_image("PNG", seed=5)
    image = image_import_bytes(data=data, source_url="ranges").image
    assert image is not None
    url = f"/media/{image.storage_key}"
    client = Client()
    client.force_login(cast.other)
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 10-29/{len(data)}"
    assert part["Content-Length"] == "20" and part["Content-Type"] == "image/png"
    assert part["X-Content-Type-Options"] == "nosniff"
    assert b"".join(part.streaming_content) == data[10:30]  # type: ignore[attr-defined]
    tail = client.get(url, headers={"Range": "bytes=-8"})
    assert b"".join(tail.streaming_content) == data[-8:]  # type: ignore[attr-defined]
    beyond = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(data)}"
    # A conditional range we cannot check gets the whole file.
    conditional = client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"x"'})
    assert conditional.status_code == 200
    # A range asks for bytes, not for permission: the anonymous still go to log in, and
    # unsafe or unknown keys are still 404.
    assert Client().get(url, headers={"Range": "bytes=0-1"}).status_code == 302
    for bad in ("images/../x", "images/none.png", "secrets/a"):
        assert client.get(f"/media/{bad}", headers={"Range": "bytes=0-1"}).status_code == 404
