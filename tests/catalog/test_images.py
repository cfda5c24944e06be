"""pipelines.images: the content check, without Django."""

from __future__ import annotations

import hashlib

import pytest

from pipelines.images import ImageRejected, inspect_image
from tests.catalog.conftest import HTML_PAGE, SVG_WITH_SCRIPT, animation, make_image, png_bomb

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 10_000_000}


@pytest.mark.parametrize(
    ("pillow_format", "fmt", "mime"),
    [
        ("JPEG", "jpeg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
    ],
)
def test_accepted_formats_are_described_by_content(pillow_format: str, fmt: str, mime: str) -> None:
    data = make_image(pillow_format, size=(40, 30))
    info = inspect_image(data, **LIMITS)
    assert (info.format, info.mime, info.width, info.height) == (fmt, mime, 40, 30)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


def _reason(data: bytes, **limits: int) -> str:
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, **{**LIMITS, **limits})
    return caught.value.reason


def test_refusals_name_their_reason() -> None:
    png, jpeg = make_image("PNG"), make_image("JPEG")
    assert _reason(b"") == "empty file"
    assert "file too large" in _reason(png, max_bytes=len(png) - 1)
    assert "not a supported image" in _reason(b"just some text, no picture")
    assert "SVG" in _reason(SVG_WITH_SCRIPT)
    assert "HTML" in _reason(HTML_PAGE)
    assert "truncated" in _reason(jpeg[: len(jpeg) // 2])
    assert "truncated" in _reason(jpeg[:-2])  # only the end-of-image marker missing
    assert "truncated" in _reason(png[: len(png) // 2])
    assert "truncated" in _reason(png[:-12])  # IEND chunk cut off


def test_decompression_bombs_are_refused_from_the_header() -> None:
    # 50k x 50k: Pillow's own guard fires while opening.
    assert "decompression bomb" in _reason(png_bomb())
    # 5k x 5k is under Pillow's default limit but over ours: our header check fires,
    # before the (deliberately broken) pixel data is ever decoded.
    assert "5000x5000" in _reason(png_bomb(5000, 5000), max_pixels=1_000_000)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animations_are_limited_in_frames(fmt: str) -> None:
    data = animation(fmt, frames=12)
    assert "more than 10 frames" in _reason(data, max_frames=10)
    info = inspect_image(data, **LIMITS, max_frames=12)  # exactly at the limit: accepted
    assert (info.width, info.height) == (16, 16)


def test_animations_are_limited_in_decoded_pixels_over_all_frames() -> None:
    # 8 frames of 400x400 = 1.28M decoded pixels, each frame well under max_pixels.
    data = animation("GIF", frames=8, size=(400, 400))
    reason = _reason(data, max_total_pixels=1_000_000)
    assert "decode to over 1000000 pixels" in reason and "160000 pixels" in reason
    assert inspect_image(data, **LIMITS, max_total_pixels=1_280_000).format == "gif"


def test_a_still_gif_is_not_an_animation() -> None:
    assert inspect_image(make_image("GIF"), **LIMITS, max_frames=1).format == "gif"
