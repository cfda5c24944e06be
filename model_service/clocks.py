"""Synthetic PixMo-Clocks: analog clock faces rendered with Pillow at random times.

Each example draws a face style (shape, numerals, ticks, hands, colours, rotation,
background) and a time from its own generator `default_rng([seed, i])`, so example i
is the same whatever `n` is. Faces are drawn at twice the output size and downsampled,
which antialiases edges without a vector renderer.

Output (an export dir, CONTRACT.md §Exports): `manifest.json`, one parquet shard with
exactly the pixmo-clocks columns (PIXMO_SPEC.md §2), and `images/<example_id>.png`.
Hours are on a 12-hour dial (an analog face cannot show AM/PM), so `hour_visible` is
0..11; a face drawn without hands has hour/minute/second_visible = -1.

    python -m model_service.clocks --out DIR --n N --seed S --size PX
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pipelines import molmo_text

SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("watchface_id", pa.string()),
        ("watchface_name", pa.string()),
        ("watch_time", pa.string()),
        ("time_format", pa.string()),
        ("shows_seconds", pa.bool_()),
        ("hour_visible", pa.int32()),
        ("minute_visible", pa.int32()),
        ("second_visible", pa.int32()),
        ("text", pa.string()),
    ]
)
SHAPES = ("round", "square", "rounded")
NUMERALS = ("arabic", "roman", "none")
TICKS = ("none", "hours", "minutes", "dots")
HANDS = ("line", "tapered", "arrow")
BACKGROUNDS = ("solid", "gradient", "stripes", "noise")
ROMAN = ("XII", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI")
HIDDEN_HANDS_PROB = 0.05  # faces drawn without hands teach "cannot be read"
SUPERSAMPLE = 2
Color = tuple[int, int, int]


@dataclass(frozen=True)
class FaceStyle:
    """Everything about a face's look; its hash is the `watchface_id`."""

    shape: str
    numerals: str
    ticks: str
    hands: str
    face: Color
    ink: Color  # numerals, ticks, rim, hour and minute hands
    second_hand: Color
    background: str
    bg_a: Color
    bg_b: Color
    show_seconds: bool
    rotation: float  # degrees, counter-clockwise, of the whole face
    scale: float  # face diameter as a share of the image side

    @property
    def watchface_id(self) -> str:
        """Stable id of the style (same style -> same id)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """A readable name built from the discrete choices."""
        return f"{self.shape}-{self.numerals}-{self.ticks}-{self.hands}-{self.background}"


def _color(rng: np.random.Generator, low: int = 0, high: int = 256) -> Color:
    r, g, b = (int(v) for v in rng.integers(low, high, size=3))
    return r, g, b


def _contrasting(rng: np.random.Generator, base: Color) -> Color:
    # Ink must stay readable on the face: dark ink on light faces and vice versa.
    light = sum(base) / 3 > 128
    return _color(rng, 0, 90) if light else _color(rng, 170, 256)


def sample_style(rng: np.random.Generator) -> FaceStyle:
    """Draw a face style."""
    face = _color(rng)
    return FaceStyle(
        shape=str(rng.choice(SHAPES)),
        numerals=str(rng.choice(NUMERALS)),
        ticks=str(rng.choice(TICKS)),
        hands=str(rng.choice(HANDS)),
        face=face,
        ink=_contrasting(rng, face),
        second_hand=_color(rng),
        background=str(rng.choice(BACKGROUNDS)),
        bg_a=_color(rng),
        bg_b=_color(rng),
        show_seconds=bool(rng.random() < 0.5),
        rotation=float(rng.uniform(-25.0, 25.0)) if rng.random() < 0.5 else 0.0,
        scale=float(rng.uniform(0.6, 0.95)),
    )


def _background(style: FaceStyle, size: int, rng: np.random.Generator) -> Image.Image:
    a, b = np.asarray(style.bg_a, np.float32), np.asarray(style.bg_b, np.float32)
    if style.background == "gradient":
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
        pixels = np.broadcast_to(a * (1 - t) + b * t, (size, size, 3))
    elif style.background == "stripes":
        period = int(rng.integers(4, 24))
        rows = (np.arange(size) // period) % 2 == 0
        pixels = np.where(rows[:, None, None], a, b) * np.ones((size, size, 3), np.float32)
    else:
        pixels = np.broadcast_to(a, (size, size, 3))
    if style.background == "noise":
        pixels = pixels + rng.normal(0.0, 40.0, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _polar(cx: float, cy: float, radius: float, turn: float) -> tuple[float, float]:
    """Point at `radius` from the centre, `turn` of a full circle clockwise from 12."""
    angle = 2 * math.pi * turn
    return cx + radius * math.sin(angle), cy - radius * math.cos(angle)


def _draw_face(draw: ImageDraw.ImageDraw, style: FaceStyle, side: int) -> None:
    box = (side * 0.02, side * 0.02, side * 0.98, side * 0.98)
    rim = max(2, side // 40)
    if style.shape == "round":
        draw.ellipse(box, fill=style.face, outline=style.ink, width=rim)
    elif style.shape == "square":
        draw.rectangle(box, fill=style.face, outline=style.ink, width=rim)
    else:
        draw.rounded_rectangle(box, radius=side // 6, fill=style.face, outline=style.ink, width=rim)
    centre, radius = side / 2, side * 0.42
    if style.ticks != "none":
        steps = 60 if style.ticks == "minutes" else 12
        for i in range(steps):
            major = i % (steps // 12) == 0
            outer = _polar(centre, centre, radius, i / steps)
            if style.ticks == "dots":
                dot = side / 80
                draw.ellipse(
                    (outer[0] - dot, outer[1] - dot, outer[0] + dot, outer[1] + dot), fill=style.ink
                )
                continue
            inner = _polar(centre, centre, radius * (0.88 if major else 0.94), i / steps)
            draw.line([inner, outer], fill=style.ink, width=max(1, side // (90 if major else 200)))
    if style.numerals != "none":
        font = ImageFont.load_default(size=max(8, side // 12))
        for hour in range(12):
            label = ROMAN[hour] if style.numerals == "roman" else str(hour or 12)
            at = _polar(centre, centre, radius * 0.74, hour / 12)
            draw.text(at, label, fill=style.ink, font=font, anchor="mm")


def _draw_hand(
    draw: ImageDraw.ImageDraw,
    style: str,
    centre: float,
    length: float,
    width: float,
    turn: float,
    color: Color,
) -> None:
    tip = _polar(centre, centre, length, turn)
    tail = _polar(centre, centre, length * 0.15, turn + 0.5)
    if style == "tapered":
        left = _polar(centre, centre, width, turn - 0.25)
        right = _polar(centre, centre, width, turn + 0.25)
        draw.polygon([tip, left, tail, right], fill=color)
    else:
        draw.line([tail, tip], fill=color, width=max(1, int(width)))
    if style == "arrow":
        back = _polar(centre, centre, length * 0.8, turn)
        left = _polar(back[0], back[1], width * 1.5, turn - 0.25)
        right = _polar(back[0], back[1], width * 1.5, turn + 0.25)
        draw.polygon([tip, left, right], fill=color)


def render_clock(
    style: FaceStyle,
    hour: int,
    minute: int,
    second: int,
    size: int,
    rng: np.random.Generator,
    hands: bool = True,
) -> Image.Image:
    """Render one RGB `size` x `size` image of `style` showing hour:minute:second."""
    side = size * SUPERSAMPLE
    face = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(face)
    _draw_face(draw, style, side)
    centre = side / 2
    if hands:
        # The hour hand is clearly shorter and thicker: otherwise 3:15 and 3:03 look alike.
        hour_turn = ((hour % 12) + minute / 60) / 12
        minute_turn = (minute + second / 60) / 60
        _draw_hand(draw, style.hands, centre, side * 0.24, side / 30, hour_turn, style.ink)
        _draw_hand(draw, style.hands, centre, side * 0.38, side / 55, minute_turn, style.ink)
        if style.show_seconds:
            _draw_hand(draw, "line", centre, side * 0.4, side / 150, second / 60, style.second_hand)
        dot = side / 40
        draw.ellipse((centre - dot, centre - dot, centre + dot, centre + dot), fill=style.ink)
    if style.rotation:
        face = face.rotate(style.rotation, resample=Image.Resampling.BICUBIC)
    diameter = max(8, int(size * style.scale))
    face = face.resize((diameter, diameter), Image.Resampling.LANCZOS)
    canvas = _background(style, size, rng)
    slack = size - diameter
    offset = (int(rng.integers(0, slack + 1)), int(rng.integers(0, slack + 1)))
    canvas.paste(face, offset, face)
    if rng.random() < 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    return canvas


def make_example(seed: int, index: int, size: int) -> tuple[dict[str, Any], Image.Image]:
    """Row (pixmo-clocks columns) and image of example `index`, from `rng([seed, index])`."""
    rng = np.random.default_rng([seed, index])
    style = sample_style(rng)
    hour24, minute, second = (int(rng.integers(24)), int(rng.integers(60)), int(rng.integers(60)))
    hands = bool(rng.random() >= HIDDEN_HANDS_PROB)
    image = render_clock(style, hour24, minute, second, size, rng, hands=hands)
    shows_seconds = hands and style.show_seconds
    row = {
        "example_id": f"clock-{seed}-{index:08d}",
        "watchface_id": style.watchface_id,
        "watchface_name": style.name,
        "watch_time": f"{hour24:02d}:{minute:02d}:{second:02d}",
        "time_format": "12h",
        "shows_seconds": shows_seconds,
        "hour_visible": hour24 % 12 if hands else -1,
        "minute_visible": minute if hands else -1,
        "second_visible": second if shows_seconds else -1,
        "text": molmo_text.clock_answer(hour24, minute)
        if hands
        else molmo_text.CLOCK_HIDDEN_ANSWER,
    }
    return row, image


def write_clocks(out: str | Path, n: int, seed: int = 0, size: int = 336) -> Path:
    """Render `n` clocks into the export dir `out`; returns the manifest path."""
    if n < 1 or size < 32:
        raise ValueError(f"need n >= 1 and size >= 32, got n={n} size={size}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        row, image = make_example(seed, index, size)
        image.save(out / "images" / f"{row['example_id']}.png")
        rows.append(row)
    shard = "clocks-00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / shard)
    manifest = {"dataset": "pixmo-clocks", "format": "parquet", "shards": [shard], "rows": n}
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description="Render synthetic PixMo-Clocks.")
    parser.add_argument("--out", required=True, help="export dir to write")
    parser.add_argument("--n", type=int, required=True, help="number of clocks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=336, help="image side in pixels")
    args = parser.parse_args(argv)
    path = write_clocks(args.out, args.n, args.seed, args.size)
    print(f"wrote {args.n} clocks to {path.parent}")


if __name__ == "__main__":
    main()
