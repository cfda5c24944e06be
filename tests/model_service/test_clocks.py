"""Synthetic PixMo-Clocks: schema, images, answers, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from model_service import clocks, data
from pipelines import molmo_text

N = 24


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clocks")
    clocks.main(["--out", str(out), "--n", str(N), "--seed", "3", "--size", "64"])
    return out


def _rows(export: Path) -> list[dict]:
    return pq.read_table(export / "clocks-00000.parquet").to_pylist()


def test_schema_is_exactly_the_published_one(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest == {
        "dataset": "pixmo-clocks",
        "format": "parquet",
        "shards": ["clocks-00000.parquet"],
        "rows": N,
    }
    schema = pq.read_schema(export / "clocks-00000.parquet")
    expected = [
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
    assert [(f.name, f.type) for f in schema] == expected


def test_answers_match_watch_time(export: Path) -> None:
    rows = _rows(export)
    hidden = 0
    for row in rows:
        hour, minute, second = (int(v) for v in row["watch_time"].split(":"))
        if row["hour_visible"] == -1:
            hidden += 1
            assert row["minute_visible"] == row["second_visible"] == -1
            assert row["text"] == molmo_text.CLOCK_HIDDEN_ANSWER
            assert data.clock_target(row) == molmo_text.CLOCK_HIDDEN_ANSWER
            continue
        assert (row["hour_visible"], row["minute_visible"]) == (hour % 12, minute)
        assert row["second_visible"] == (second if row["shows_seconds"] else -1)
        assert row["text"] == f"The time shown is {hour % 12 or 12}:{minute:02d}."
        assert data.clock_target(row) == row["text"]
        assert molmo_text.parse_clock_answer(row["text"]) == (hour % 12 or 12, minute)
    assert hidden < N


def test_images_exist_resolve_and_differ(export: Path) -> None:
    resolver = data.ImageResolver(export)
    arrays = []
    for row in _rows(export):
        path = resolver.resolve(row)
        assert path == export / "images" / f"{row['example_id']}.png"
        with Image.open(path) as image:
            assert image.size == (64, 64)
            arrays.append(np.asarray(image.convert("RGB")))
    assert len({a.tobytes() for a in arrays}) == N
    assert len({r["watchface_id"] for r in _rows(export)}) > N // 2


def test_seeded_determinism(tmp_path: Path, export: Path) -> None:
    again = tmp_path / "again"
    clocks.write_clocks(again, 3, seed=3, size=64)
    assert _rows(again) == _rows(export)[:3]
    for row in _rows(again):
        name = f"images/{row['example_id']}.png"
        assert (again / name).read_bytes() == (export / name).read_bytes()
    other = tmp_path / "other"
    clocks.write_clocks(other, 3, seed=4, size=64)
    assert [r["watch_time"] for r in _rows(other)] != [r["watch_time"] for r in _rows(again)]


def test_hands_are_drawn_where_the_time_says() -> None:
    # A plain face with no numerals or ticks: between the hour hand's reach (~45 px)
    # and the rim (~90 px) the only ink is the minute hand (~72 px long).
    style = clocks.FaceStyle(
        "round", "none", "none", "line", (255, 255, 255), (0, 0, 0), (255, 0, 0),
        "solid", (255, 255, 255), (255, 255, 255), False, 0.0, 0.95,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    image = np.asarray(clocks.render_clock(style, 0, 15, 0, 200, rng).convert("L"))
    ys, xs = np.nonzero(image < 100)
    cx, cy = xs.mean(), ys.mean()  # the rim dominates the ink, so this is the centre
    radius = np.hypot(xs - cx, ys - cy)
    ring = (radius > 50) & (radius < 80)
    # 12:15 -> the minute hand points right (3 o'clock), level with the centre.
    assert ring.sum() > 10
    assert (xs[ring] > cx + 45).all() and (np.abs(ys[ring] - cy) < 6).all()


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        clocks.write_clocks(tmp_path, 0)
