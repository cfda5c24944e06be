"""The real OCR engine (RapidOCR on onnxruntime, models from its wheel) on drawn text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from pipelines import ocr

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def text_png(lines: list[str], *, size: tuple[int, int] = (720, 260)) -> bytes:
    image = Image.new("RGB", size, (250, 250, 245))
    pen = ImageDraw.Draw(image)
    if not FONT.exists():
        pytest.fail(f"{FONT} is missing: install Debian's 'fonts-dejavu-core' (make test does)")
    font = ImageFont.truetype(str(FONT), 44)
    for n, line in enumerate(lines):
        pen.text((30, 30 + n * 90), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def squashed(text: str) -> str:
    """Upper-case letters and digits only: RapidOCR sometimes drops spaces between words."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def test_reads_text_drawn_into_an_image_in_reading_order() -> None:
    result = ocr.read_text(text_png(["OPEN 24 HOURS", "FRESH BREAD DAILY"]))
    text = squashed(result.text)
    assert "OPEN24HOURS" in text and "FRESHBREADDAILY" in text, result.text
    assert text.index("OPEN24HOURS") < text.index("FRESHBREADDAILY"), result.text
    assert len(result.text.splitlines()) == 2, result.text  # one line per row
    assert result.engine == "rapidocr-onnxruntime"
    assert all(line.score >= ocr.DEFAULT_MIN_SCORE for line in result.lines)


def test_an_image_without_text_gives_no_lines() -> None:
    blank = io.BytesIO()
    Image.new("RGB", (200, 120), (30, 90, 200)).save(blank, "PNG")
    assert ocr.read_text(blank.getvalue()).text == ""


def test_bytes_that_are_not_an_image_are_refused_with_a_reason() -> None:
    with pytest.raises(ocr.OcrError, match="not a readable image"):
        ocr.read_text(b"<html>not an image</html>")
