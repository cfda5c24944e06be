"""Loading the images of `image_url` parts: `data:` URLs and http(s) URLs.

http(s) goes through pipelines/fetch.py, the platform's SSRF guard (loopback, private,
link-local and metadata addresses are refused after DNS and on every redirect). Both
kinds are held to a byte limit before decoding and to a pixel limit read from the image
header before any pixel is decoded, so a decompression bomb costs nothing. Only raster
formats Pillow decodes safely are accepted (PNG, JPEG, WebP, GIF, BMP); the first frame
of an animation is used.

This module must not import annotator_app.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from model_service.serve.protocol import BadRequest, ImageRef
from pipelines.fetch import FetchRefused, fetch_url

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
_DATA_URL = re.compile(
    r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),(?P<data>.*)", re.S
)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 10 * 1024 * 1024  # encoded size of one image
    max_pixels: int = 40_000_000  # width x height of one image
    max_images: int = 1  # per request
    fetch_timeout: float = 10.0  # seconds per connect/read of an http(s) image
    max_redirects: int = 3
    allowed_addresses: tuple[str, ...] = ()  # "ip" or "ip:port" the SSRF guard lets through


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"


def _data_url_bytes(ref: ImageRef, limits: ImageLimits) -> bytes:
    match = _DATA_URL.fullmatch(ref.url.strip())
    if match is None:
        raise BadRequest(f"{ref.where}: malformed data: URL", param="messages")
    if ";base64" not in match["params"].lower():
        raise BadRequest(f"{ref.where}: data: URLs must be base64-encoded", param="messages")
    payload = re.sub(r"\s+", "", match["data"])
    if len(payload) * 3 // 4 > limits.max_bytes:
        raise BadRequest(
            f"{ref.where}: the image is about {_megabytes(len(payload) * 3 // 4)}; "
            f"the limit is {_megabytes(limits.max_bytes)}",
            param="messages",
            status=413,
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"{ref.where}: the data: URL is not valid base64", param="messages"
        ) from None


def _url_bytes(ref: ImageRef, limits: ImageLimits) -> bytes:
    scheme = ref.url.split(":", 1)[0].lower()
    if scheme == "data":
        return _data_url_bytes(ref, limits)
    if scheme not in ("http", "https"):
        raise BadRequest(
            f"{ref.where}: image URLs must be http(s) or data:, got {scheme}:", param="messages"
        )
    try:
        return fetch_url(
            ref.url,
            max_bytes=limits.max_bytes,
            timeout=limits.fetch_timeout,
            max_redirects=limits.max_redirects,
            allowed_addresses=limits.allowed_addresses,
        ).data
    except FetchRefused as exc:
        status = 413 if "too large" in exc.reason else 400
        raise BadRequest(
            f"{ref.where}: image not fetched: {exc.reason}", param="messages", status=status
        ) from None


def decode_image(data: bytes, where: str, limits: ImageLimits) -> Image.Image:
    """Bytes -> an RGB image, EXIF rotation applied; refuses what is not a supported
    image or is larger than the pixel limit (checked on the header, before decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise BadRequest(
                    f"{where}: {image.format or 'unknown'} images are not accepted; "
                    f"send {', '.join(sorted(ALLOWED_FORMATS))}",
                    param="messages",
                )
            pixels = image.width * image.height
            if pixels > limits.max_pixels:
                raise BadRequest(
                    f"{where}: the image is {image.width}x{image.height} = {pixels:,} pixels; "
                    f"the limit is {limits.max_pixels:,}",
                    param="messages",
                    status=413,
                )
            image.seek(0)
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except BadRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequest(
            f"{where}: the image declares too many pixels", param="messages", status=413
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"{where}: not a decodable image ({exc})", param="messages") from None


def load_images(refs: list[ImageRef], limits: ImageLimits) -> None:
    """Fetch and decode every image of a request into `ref.image` (in the caller's
    thread: a slow image server never holds up the model)."""
    if refs and limits.max_images == 0:
        raise BadRequest(f"{refs[0].where}: this model reads text only", param="messages")
    if len(refs) > limits.max_images:
        raise BadRequest(
            f"this model takes at most {limits.max_images} image(s) per request, got {len(refs)}",
            param="messages",
        )
    for ref in refs:
        ref.image = decode_image(_url_bytes(ref, limits), ref.where, limits)
