"""Demo images that install offline: real photographs from scikit-image plus drawn scenes.

The drawn scenes have known contents (text to read, objects to count at known places),
so the demo exercises every kind of annotation, and tests can check answers against them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# (scikit-image data function, topics) — all ship inside the wheel, no download.
_PHOTOS: list[tuple[str, list[str]]] = [
    ("astronaut", ["people", "photos"]),
    ("coffee", ["food", "photos"]),
    ("chelsea", ["animals", "photos"]),
    ("rocket", ["vehicles", "photos"]),
    ("hubble_deep_field", ["space", "photos"]),
    ("colorwheel", ["drawings"]),
]


@dataclass(frozen=True)
class DemoObject:
    label: str
    x: float  # centre, pixels
    y: float


@dataclass(frozen=True)
class DemoImage:
    name: str
    data: bytes
    topics: list[str]
    text: str = ""  # text drawn in the image, for OCR checks
    objects: list[DemoObject] = field(default_factory=list)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=90) if fmt == "JPEG" else image.save(buf, format=fmt)
    return buf.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def street_sign() -> DemoImage:
    """A green street sign with white text on a sky background."""
    img = Image.new("RGB", (640, 420), (135, 190, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((300, 200, 316, 420), fill=(90, 90, 90))
    draw.rounded_rectangle(
        (120, 90, 520, 210), radius=14, fill=(0, 110, 60), outline="white", width=5
    )
    text = "MAIN ST"
    draw.text((320, 150), text, fill="white", font=_font(64), anchor="mm")
    return DemoImage("street-sign.png", _encode(img, "PNG"), ["street signs"], text=text)


def counting_scene(seed: int = 7) -> DemoImage:
    """Red apples and blue squares at known positions on a table-coloured background."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (800, 600), (222, 196, 150))
    draw = ImageDraw.Draw(img)
    objects: list[DemoObject] = []
    cells = [(c, r) for r in range(4) for c in range(6)]
    order = rng.permutation(len(cells))
    for i, cell_index in enumerate(order[:8]):
        col, row = cells[int(cell_index)]
        cx, cy = 70 + col * 130, 80 + row * 140
        if i < 5:
            draw.ellipse((cx - 35, cy - 35, cx + 35, cy + 35), fill=(200, 20, 30))
            objects.append(DemoObject("apple", cx, cy))
        else:
            draw.rectangle((cx - 30, cy - 30, cx + 30, cy + 30), fill=(30, 60, 200))
            objects.append(DemoObject("blue square", cx, cy))
    return DemoImage("counting-apples.png", _encode(img, "PNG"), ["counting"], objects=objects)


def menu_board() -> DemoImage:
    """A cafe menu: several lines of text with prices, for OCR and question answering."""
    img = Image.new("RGB", (600, 480), (30, 30, 30))
    draw = ImageDraw.Draw(img)
    lines = ["CAFE MENU", "Espresso 2.50", "Latte 3.75", "Croissant 2.10"]
    for i, line in enumerate(lines):
        size = 54 if i == 0 else 40
        draw.text((300, 70 + i * 100), line, fill=(250, 240, 200), font=_font(size), anchor="mm")
    return DemoImage(
        "menu-board.jpg", _encode(img, "JPEG"), ["text", "food"], text="\n".join(lines)
    )


def demo_images() -> Iterator[DemoImage]:
    """Every demo image, photographs first; deterministic bytes on every call."""
    import skimage.data

    for name, topics in _PHOTOS:
        pixels = getattr(skimage.data, name)()
        image = Image.fromarray(np.asarray(pixels)).convert("RGB")
        yield DemoImage(f"{name}.jpg", _encode(image, "JPEG"), topics)
    yield street_sign()
    yield counting_scene()
    yield menu_board()
