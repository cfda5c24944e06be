"""Check image bytes by their content before anything stores them.

The rules: the magic bytes must name one of the accepted formats (JPEG, PNG, WebP, GIF),
the header's pixel count must stay under a limit before a single pixel is decoded (a
decompression bomb is a tiny file declaring a huge canvas), an animation may hold at most
`max_frames` frames and `max_total_pixels` decoded pixels over all of them (a GIF of a
few kilobytes can hold thousands of frames), and the first frame must then decode
completely (a truncated file fails here). File names and declared content types
are never consulted: only the bytes decide.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; `reason` says why in words for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int
    height: int
    format: str  # "jpeg", "png", "webp" or "gif"
    mime: str

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


# format name -> (MIME type, the Pillow format names that may carry it). Pillow opens
# JPEGs holding several pictures as "MPO"; their first frame is an ordinary JPEG.
ACCEPTED_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jpeg": ("image/jpeg", ("JPEG", "MPO")),
    "png": ("image/png", ("PNG",)),
    "webp": ("image/webp", ("WEBP",)),
    "gif": ("image/gif", ("GIF",)),
}


def sniff_format(data: bytes) -> str | None:
    """The accepted format the magic bytes announce, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _describe_unknown(data: bytes) -> str:
    """A short guess at what a refused file is, so the rejection reason helps a person."""
    head = data[:512].lstrip().lower()
    if head.startswith(b"<?xml") or b"<svg" in head:
        return "SVG (vector images may carry scripts and are not accepted)"
    if head.startswith((b"<!doctype html", b"<html")) or b"<script" in head:
        return "HTML"
    if head.startswith(b"%pdf"):
        return "PDF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    return "an unknown format"


# Defaults of the animation limits (the platform passes its settings).
DEFAULT_MAX_FRAMES = 100
DEFAULT_MAX_TOTAL_PIXELS = 100_000_000


def inspect_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS,
) -> ImageInfo:
    """Check `data` by content and describe it; raise ImageRejected with the reason."""
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large: {len(data)} bytes, the limit is {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(
            f"not a supported image: content looks like {_describe_unknown(data)}; "
            "accepted are JPEG, PNG, WebP and GIF"
        )
    mime, pillow_names = ACCEPTED_FORMATS[fmt]
    width, height = _read_header(data, fmt=fmt, pillow_names=pillow_names, max_pixels=max_pixels)
    _count_frames(
        data,
        pillow_names=pillow_names,
        frame_pixels=width * height,
        max_frames=max_frames,
        max_total_pixels=max_total_pixels,
    )
    _decode_fully(data, pillow_names=pillow_names)
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=fmt,
        mime=mime,
    )


def _read_header(
    data: bytes, *, fmt: str, pillow_names: tuple[str, ...], max_pixels: int
) -> tuple[int, int]:
    """Width and height from the header alone; refuse bombs before any decoding."""
    try:
        # Pillow's own bomb guard fires inside open(): turn its warning into an error so
        # the check does not depend on the process-wide warning filters.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(pillow_names)) as img:
                width, height = img.size
                opened_as = img.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb refused: {exc}") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageRejected(
            f"unreadable {fmt.upper()} header (truncated or corrupt): {exc}"
        ) from None
    if opened_as not in pillow_names:
        raise ImageRejected(f"content does not decode as {fmt.upper()}")
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            f"decompression bomb refused: {width}x{height} = {width * height} pixels, "
            f"the limit is {max_pixels}"
        )
    return width, height


def _count_frames(
    data: bytes,
    *,
    pillow_names: tuple[str, ...],
    frame_pixels: int,
    max_frames: int,
    max_total_pixels: int,
) -> None:
    """Refuse animations with too many frames or too many decoded pixels in all.

    Frames are counted by seeking, one at a time, with both limits checked at each, so
    at most one frame past a limit is ever decoded: a GIF's frame count is in no
    header, and Pillow's `n_frames` would walk every frame first. Every frame decodes
    to a full canvas, so frames x width x height bounds the work.
    """
    try:
        with Image.open(io.BytesIO(data), formats=list(pillow_names)) as img:
            if not getattr(img, "is_animated", False):
                return
            frames = 1
            while True:
                try:
                    img.seek(frames)
                except EOFError:
                    return
                frames += 1
                if frames > max_frames:
                    raise ImageRejected(
                        f"animation refused: more than {max_frames} frames (the limit)"
                    )
                if frames * frame_pixels > max_total_pixels:
                    raise ImageRejected(
                        f"animation refused: {frames} or more frames of {frame_pixels} pixels "
                        f"decode to over {max_total_pixels} pixels (the limit over all frames)"
                    )
    except ImageRejected:
        raise
    except Exception as exc:  # a corrupt later frame
        raise ImageRejected(f"animation does not decode (truncated or corrupt): {exc}") from None


def _decode_fully(data: bytes, *, pillow_names: tuple[str, ...]) -> None:
    """Decode the first frame completely; a truncated or corrupt file raises here."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Somebody relaxed Pillow globally; a truncated file would then pass silently.
        raise ImageRejected("cannot check images: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on")
    try:
        with Image.open(io.BytesIO(data), formats=list(pillow_names)) as img:
            # verify() walks the whole file (PNG chunk checksums, up to IEND) without
            # decoding; it leaves the object unusable, so decode from a fresh one.
            img.verify()
        with Image.open(io.BytesIO(data), formats=list(pillow_names)) as img:
            img.load()
    except Exception as exc:
        raise ImageRejected(f"image does not decode (truncated or corrupt): {exc}") from None


def make_thumbnail(data: bytes, *, max_side: int, max_pixels: int) -> bytes:
    """A JPEG of the first frame, at most `max_side` pixels on its longer side.

    For bytes that already passed `inspect_image`; `max_pixels` is checked again all the
    same, since thumbnails are made later, from storage. JPEGs are decoded at a reduced
    scale (`draft`), so a large photo costs a fraction of a full decode.
    """
    with Image.open(io.BytesIO(data)) as img:
        if img.width * img.height > max_pixels:
            raise ImageRejected(f"image too large for a thumbnail: {img.width}x{img.height}")
        img.draft("RGB", (max_side, max_side))
        frame = img.convert("RGBA")
    frame.thumbnail((max_side, max_side))
    flat = Image.new("RGB", frame.size, (255, 255, 255))
    flat.paste(frame, mask=frame.getchannel("A"))  # transparent parts on white
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=80)
    return out.getvalue()
