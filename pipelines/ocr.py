"""OCR: the text written in an image, read by a non-VLM engine (RapidOCR on onnxruntime).

PixMo-AMA's answers are built from a caption and the output of an OCR model that is not
a vision-language model. RapidOCR ships its detection, angle and recognition ONNX models
inside its wheel, so nothing is downloaded at run time. The engine is loaded once per
process (about 2 s) and is thread-safe enough for one call at a time: calls are
serialised by a lock.

`read_text(data)` takes encoded image bytes and returns the lines found, top to bottom
then left to right, with their confidence and box; lines under `min_score` are dropped.
Boxes on one row are joined by a space in `text`, rows by a newline. The recogniser
(PP-OCRv4, trained mostly on Chinese and English) sometimes drops the space between
English words set close together ("OPEN24HOURS"); the letters are right.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

ENGINE_NAME = "rapidocr-onnxruntime"
DEFAULT_MIN_SCORE = 0.5
# Large images are shrunk before detection: OCR time grows with the pixel count and
# text that needs more than this many pixels on the long side is rare on the web.
MAX_SIDE = 2048
DET_SIDE = 1280


class OcrError(RuntimeError):
    """The image could not be read (not an image, or the engine failed)."""


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float
    box: list[list[float]]  # four corners, pixels of the (possibly shrunk) image


@dataclass(frozen=True)
class OcrResult:
    lines: list[OcrLine] = field(default_factory=list)
    engine: str = ENGINE_NAME
    seconds: float = 0.0

    rows: list[list[int]] = field(default_factory=list)  # indices into `lines`, per row

    @property
    def text(self) -> str:
        """Rows joined by newlines, boxes of a row by spaces ("" without readable text)."""
        if not self.rows:
            return "\n".join(line.text for line in self.lines)
        return "\n".join(" ".join(self.lines[i].text for i in row) for row in self.rows)


_engine: Any = None
_engine_lock = threading.Lock()
_call_lock = threading.Lock()


def _get_engine() -> Any:
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # pragma: no cover - an install problem
                raise OcrError(
                    "the OCR engine is missing: install rapidocr-onnxruntime "
                    "(pinned in requirements.txt)"
                ) from exc
            # Detection on the image scaled to at most DET_SIDE on its long side: the
            # default (short side scaled UP to 736) made small images 5-8x slower.
            _engine = RapidOCR(det_limit_type="max", det_limit_side_len=DET_SIDE)
        return _engine


def _pixels(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except Exception as exc:
        raise OcrError(f"not a readable image: {exc}") from exc
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE))
    # RapidOCR expects OpenCV's channel order (BGR).
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _reading_order(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Top to bottom; lines whose centres are within half a line height count as one row."""

    def centre_y(line: OcrLine) -> float:
        return sum(p[1] for p in line.box) / 4

    def height(line: OcrLine) -> float:
        ys = [p[1] for p in line.box]
        return max(ys) - min(ys)

    ordered = sorted(lines, key=centre_y)
    rows: list[list[OcrLine]] = []
    for line in ordered:
        if rows and abs(centre_y(rows[-1][0]) - centre_y(line)) < height(rows[-1][0]) / 2:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda ln: min(p[0] for p in ln.box)) for row in rows]


def read_text(data: bytes, *, min_score: float = DEFAULT_MIN_SCORE) -> OcrResult:
    """The text lines of the image `data` (PNG, JPEG, WebP, ... bytes)."""
    pixels = _pixels(data)
    engine = _get_engine()
    started = time.perf_counter()
    with _call_lock:
        try:
            found, _ = engine(pixels)
        except Exception as exc:
            raise OcrError(f"the OCR engine failed: {exc}") from exc
    lines = [
        OcrLine(
            text=str(text).strip(), score=float(score), box=[[float(x), float(y)] for x, y in box]
        )
        for box, text, score in (found or [])
        if str(text).strip() and float(score) >= min_score
    ]
    ordered: list[OcrLine] = []
    rows: list[list[int]] = []
    for row in _reading_order(lines):
        rows.append(list(range(len(ordered), len(ordered) + len(row))))
        ordered.extend(row)
    return OcrResult(lines=ordered, rows=rows, seconds=time.perf_counter() - started)
