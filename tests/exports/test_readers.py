"""Fresh exports load in the tools ML engineers use: pyarrow, `datasets`, and the model
service's own reader; one training step of the debug preset runs on a fresh export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotator_app.exports import services
from model_service import data as molmo_data
from tests.exports import helpers

pytestmark = pytest.mark.django_db

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def export(dataset: str, out: Path, **options: object) -> Path:
    created = services.export_create(dataset=dataset, **options)  # type: ignore[arg-type]
    services.export_run(export_id=created.pk, out=str(out))
    return out


@pytest.fixture
def cap_rows() -> None:
    camp = helpers.campaign("cap")
    for i in range(8):
        name = list(COLOURS)[i % 3]
        r, g, b = COLOURS[name]
        image = helpers.stored_image((r, g, (b + i) % 256))
        helpers.cap_image(
            camp, image, [f"um a {name} square", f"a {name} block"], f"A {name} square."
        )


@pytest.fixture
def points_rows() -> None:
    camp = helpers.campaign("points")
    image = helpers.stored_image((10, 20, 30), size=(80, 40))
    helpers.points_image(
        camp, image, [("dog", [(25.0, 50.0)]), ("cats", [(10.0, 20.0), (90.0, 80.0)])]
    )
    helpers.points_image(camp, image, [("zebra", [])], method="counting")


def test_datasets_and_pyarrow_load_the_files(cap_rows, points_rows, tmp_path: Path) -> None:
    import datasets

    for dataset, fmt in (("cap", "parquet"), ("points", "parquet"), ("points", "jsonl")):
        out = export(dataset, tmp_path / f"{dataset}-{fmt}", format=fmt)
        manifest = json.loads((out / "manifest.json").read_text())
        files = [str(out / s) for s in manifest["shards"]]
        builder = "parquet" if fmt == "parquet" else "json"
        loaded = datasets.load_dataset(
            builder, data_files=files, split="train", cache_dir=str(tmp_path / "hf")
        )
        assert loaded.num_rows == manifest["rows"]
        if dataset == "points":
            first = loaded[0]
            assert first["label"] == "dog" and first["points"] == [{"x": 25.0, "y": 50.0}]
            assert loaded.features["count"].dtype == "int64"
        else:
            assert loaded[0]["transcripts"] == ["um a red square", "a red block"]
        if fmt == "parquet":
            assert pq.read_table(files[0]).num_rows == manifest["rows"]
    # The dataset card's YAML header names the files `datasets` should read.
    card = (tmp_path / "cap-parquet" / "README.md").read_text()
    assert 'path: "data/train-*.parquet"' in card and "num_examples: 8" in card


def test_model_service_reader_takes_fresh_exports(cap_rows, points_rows, tmp_path: Path) -> None:
    cap = molmo_data.load_source(export("cap", tmp_path / "cap"))
    assert cap.kind == "cap" and len(cap.groups) == 8
    assert all(g.path.is_file() and g.path.parent.name == "images" for g in cap.groups)
    points = molmo_data.load_source(export("points", tmp_path / "points", format="jsonl"))
    assert points.kind == "points" and len(points.groups) == 1
    assert [r["label"] for r in points.groups[0].rows] == ["dog", "cats", "zebra"]
    rng = molmo_data.example_rng(0, 0, 0)
    turns = molmo_data.row_turns("points", points.groups[0].rows[0], rng, (80, 40))
    assert turns[0][1] == '<point x="25.0" y="50.0" alt="dog">dog</point>'
    counting = molmo_data.row_turns("points", points.groups[0].rows[2], rng, (80, 40))
    assert counting[0][1] == "There are none."


@pytest.mark.slow
def test_one_training_step_on_a_fresh_export(cap_rows, tmp_path: Path) -> None:
    from model_service import train
    from model_service.train.runfiles import METRICS, read_metrics

    out = export("cap", tmp_path / "cap")
    run = tmp_path / "run"
    args = [
        "--stage", "caption", "--preset", "debug", "--data", str(out), "--out", str(run),
        "--steps", "1", "--batch-size", "4", "--seq-len", "160",
        "--warmup-vit", "1", "--warmup-connector", "1", "--warmup-llm", "1",
    ]  # fmt: skip
    assert train.main(args) == 0
    rows = read_metrics(run / METRICS)
    assert [r["step"] for r in rows] == [1]
    assert rows[0]["loss"] > 0
