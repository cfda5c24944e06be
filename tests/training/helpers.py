"""Export folders for the training tests, in the layout model_service.data reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def write_cap_export(root: Path, *, rows: int = 8, dataset: str = "pixmo-cap") -> Path:
    """A small pixmo-cap export (jsonl shard, PNG images): a colour word is the caption."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(rows):
        name = list(COLOURS)[i % len(COLOURS)]
        pixels = np.zeros((48, 64, 3), np.uint8) + np.asarray(COLOURS[name], np.uint8)
        pixels[rng.integers(0, 40) :][:8] = 255  # a white stripe so images differ
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        row = {"image_url": f"images/{i}.png", "caption": f"A {name} square.", "transcripts": []}
        lines.append(json.dumps(row) + "\n")
    (root / "rows.jsonl").write_text("".join(lines))
    manifest = {"dataset": dataset, "format": "jsonl", "shards": ["rows.jsonl"], "rows": rows}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
