"""The Django-free snapshot writer: shards and row groups independent of how the rows
arrive, partial folders, the dataset card's YAML under hostile names, COPY stream errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import pixmo_schemas
from pipelines.dataset_card import CardFacts, render_card
from pipelines.export_writer import LocalSink, SnapshotWriter, WriterSettings, json_lines_batches

SCHEMA = pixmo_schemas.POINTS


def _rows(n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "image_url": f"images/{i % 7}.png",
                "image_sha256": f"{i % 7:064x}",
                "points": [{"x": float(i % 100), "y": 50.0}] * (i % 4),
                "count": i % 4,
                "label": f"label {i} <b>é</b>",
                "collection_method": "pointing",
            }
            for i in range(n)
        ],
        schema=SCHEMA,
    )


def _write(root: Path, table: pa.Table, batch_rows: int, fmt: str = "parquet") -> Path:
    sink = LocalSink(root / "snap")
    writer = SnapshotWriter(
        sink, SCHEMA, WriterSettings(fmt, shard_rows=1000, row_group_rows=300), root / "stage"
    )
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    writer.close()
    sink.commit(b"{}")
    return root / "snap"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_shards_do_not_depend_on_incoming_batch_sizes(tmp_path: Path, fmt: str) -> None:
    table = _rows(2500)
    a = _write(tmp_path / "a", table, batch_rows=7, fmt=fmt)
    b = _write(tmp_path / "b", table, batch_rows=999, fmt=fmt)
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.*") if p.name != "manifest.json")
    assert names == [f"data/train-0000{i}.{fmt}" for i in range(3)]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    if fmt == "parquet":
        meta = pq.ParquetFile(a / names[0]).metadata
        assert meta.num_rows == 1000 and [meta.row_group(i).num_rows for i in range(4)] == [
            300,
            300,
            300,
            100,
        ]
        back = pa.concat_tables([pq.read_table(a / n) for n in names])
        assert back.equals(table)


def test_partial_folder_until_commit_and_refuses_non_empty(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        LocalSink(tmp_path / "taken")
    sink = LocalSink(tmp_path / "snap")
    assert sink.root.name.startswith(".snap.partial-") and not (tmp_path / "snap").exists()
    sink.abort()
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]


def test_card_yaml_survives_hostile_names(tmp_path: Path) -> None:
    hostile = 'x: y\n--- "quoted" <script>'
    card = render_card(
        CardFacts(
            dataset="pixmo-points",
            title=hostile,
            what="w",
            how_collected="h",
            schema=pixmo_schemas.DATASETS["cap"].schema(True),
            data_glob="data/train-*.parquet",
            rows=3,
            images=2,
            licence=hostile,
            snapshot_id="id",
            created_at="now",
            code_version="abc",
            filters={"campaign": hostile},
        )
    )
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == hostile and header["pretty_name"] == hostile
    features = {f["name"]: f for f in header["dataset_info"]["features"]}
    assert features["transcripts"]["sequence"] == "string"
    assert [f["name"] for f in features["recordings"]["list"]][:2] == ["annotator", "audio"]
    assert header["dataset_info"]["splits"][0]["num_examples"] == 3


def test_copy_stream_errors_reach_the_reader() -> None:
    schema = pa.schema([("a", pa.int64())])

    def produce(sink):  # type: ignore[no-untyped-def]
        sink.write(b'{"a": 1}\n' * 10)
        raise ConnectionError("server closed the connection")

    with pytest.raises(ConnectionError):
        list(json_lines_batches(produce, schema))
    rows = sum(
        b.num_rows
        for b in json_lines_batches(lambda f: f.write(b'{"a": 2}\n' * 5000), schema, 4096)
    )
    assert rows == 5000
    assert list(json_lines_batches(lambda f: None, schema)) == []
