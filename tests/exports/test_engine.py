"""The export engine against real PostgreSQL: published schemas, contents, determinism,
empty sets, hostile text, interrupted exports, and the readers ML engineers use."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotator_app.captions.models import Recording
from annotator_app.exports import services
from annotator_app.exports.models import Export, ExportStatus
from tests.exports import helpers

pytestmark = pytest.mark.django_db

# The published schemas (PIXMO_SPEC.md §2), written out here on purpose: the export must
# match these column for column, whatever pipelines/pixmo_schemas.py says.
POINT = pa.struct([("x", pa.float64()), ("y", pa.float64())])
PUBLISHED = {
    "cap": pa.schema(
        [
            ("image_url", pa.string()),
            ("caption", pa.string()),
            ("transcripts", pa.list_(pa.string())),
        ]
    ),
    "points": pa.schema(
        [
            ("image_url", pa.string()),
            ("image_sha256", pa.string()),
            ("points", pa.list_(POINT)),
            ("count", pa.int64()),
            ("label", pa.string()),
            ("collection_method", pa.string()),
        ]
    ),
    "clocks": pa.schema(
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
    ),
}
HOSTILE = '<script>alert("x")</script> café 🙂 "quoted" \\ back\nnew line, \t tab'


def run(dataset: str, out: Path, **options: object) -> Export:
    export = services.export_create(dataset=dataset, **options)  # type: ignore[arg-type]
    return services.export_run(export_id=export.pk, out=str(out))


def table(out: Path) -> pa.Table:
    manifest = json.loads((out / "manifest.json").read_text())
    return pa.concat_tables([pq.read_table(out / s) for s in manifest["shards"]])


@pytest.fixture
def cap_data() -> dict[str, object]:
    camp = helpers.campaign("cap")
    red, blue = helpers.stored_image((200, 0, 0)), helpers.stored_image((0, 0, 200))
    helpers.cap_image(camp, red, ["um a red square", "a red block"], "A red square.")
    helpers.cap_image(camp, blue, [HOSTILE], "Blue: " + HOSTILE)
    rejected = helpers.stored_image((0, 200, 0))
    helpers.cap_image(camp, rejected, ["green"], "Green.", status="rejected")
    waiting = helpers.stored_image((200, 200, 0))
    helpers.cap_image(camp, waiting, ["yellow"], "Yellow.", status="submitted")
    return {"campaign": camp, "red": red, "blue": blue}


@pytest.fixture
def points_data() -> dict[str, object]:
    camp = helpers.campaign("points")
    red = helpers.stored_image((200, 0, 0))
    helpers.points_image(
        camp, red, [("dog", [(61.5, 40.6)]), ("cats", [(10.0, 20.0), (33.1, 40.2)])]
    )
    helpers.points_image(camp, red, [("giraffe", []), (HOSTILE, [(1.0, 99.0)])])
    helpers.points_image(camp, red, [("not accepted", [(5.0, 5.0)])], status="submitted")
    return {"campaign": camp, "red": red}


def test_cap_export_has_the_published_schema_and_accepted_rows(cap_data, tmp_path: Path) -> None:
    out = tmp_path / "cap"
    export = run("cap", out)
    assert export.status == ExportStatus.DONE
    data = table(out)
    assert data.schema.equals(PUBLISHED["cap"], check_metadata=False)
    rows = data.to_pylist()
    assert [r["caption"] for r in rows] == ["A red square.", "Blue: " + HOSTILE]
    assert rows[0]["transcripts"] == ["um a red square", "a red block"]
    assert rows[1]["transcripts"] == [HOSTILE]  # markup and unicode survive as text
    red = cap_data["red"]
    # No base URL and local media: the images ship in the snapshot, named by their hash.
    assert rows[0]["image_url"] == f"images/{red.sha256}.png"  # type: ignore[attr-defined]
    shipped = (out / rows[0]["image_url"]).read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == red.sha256  # type: ignore[attr-defined]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "pixmo-cap" and manifest["rows"] == 2
    assert manifest["images"] == 2
    assert manifest["filters"]["status"] == "accepted"
    for shard in manifest["shard_details"]:
        assert hashlib.sha256((out / shard["name"]).read_bytes()).hexdigest() == shard["sha256"]
    card = (out / "README.md").read_text()
    assert "license:" in card and "num_examples: 2" in card and "transcripts" in card


def test_status_all_adds_work_awaiting_review_never_rejected(cap_data, tmp_path: Path) -> None:
    run("cap", tmp_path / "all", status="all")
    captions = [r["caption"] for r in table(tmp_path / "all").to_pylist()]
    assert captions == ["A red square.", "Blue: " + HOSTILE, "Yellow."]


def test_points_export_schema_values_and_base_url(points_data, tmp_path: Path, settings) -> None:
    settings.EXPORT_IMAGE_BASE_URL = "https://cdn.example.org/pixmo/"
    out = tmp_path / "points"
    run("points", out)
    data = table(out)
    assert data.schema.equals(PUBLISHED["points"], check_metadata=False)
    rows = data.to_pylist()
    red = points_data["red"]
    assert [r["label"] for r in rows] == ["dog", "cats", "giraffe", HOSTILE]
    assert rows[0]["points"] == [{"x": 61.5, "y": 40.6}] and rows[0]["count"] == 1
    assert rows[2]["points"] == [] and rows[2]["count"] == 0  # "not present"
    assert {r["image_sha256"] for r in rows} == {red.sha256}  # type: ignore[attr-defined]
    assert rows[0]["image_url"] == "https://cdn.example.org/pixmo/" + red.storage_key  # type: ignore[attr-defined]
    assert not (out / "images").exists()
    assert json.loads((out / "manifest.json").read_text())["images"] == 1  # four rows, one image


def test_full_variant_appends_metadata_after_published_columns(
    points_data, cap_data, tmp_path: Path
) -> None:
    run("points", tmp_path / "p", full=True)
    data = table(tmp_path / "p")
    names = data.schema.names
    assert names[:6] == PUBLISHED["points"].names
    assert {"campaign", "annotator", "seconds"} <= set(names[6:])
    annotators = {r["annotator"] for r in data.to_pylist()}
    assert len(annotators) == 2 and all(len(a) == 16 for a in annotators)  # hashed, not names
    coverage = {"covered": ["objects"], "live_seconds": 61.0}
    Recording.objects.filter(transcript__text="um a red square").update(live_coverage=coverage)
    run("cap", tmp_path / "c", full=True)
    cap = table(tmp_path / "c").to_pylist()
    recordings = cap[0]["recordings"]
    assert [r["transcript"] for r in recordings] == ["um a red square", "a red block"]
    assert recordings[0]["cleaned_caption"] == "a red square"
    assert recordings[0]["duration_seconds"] == 65.0 and recordings[0]["audio"].startswith("audio/")
    assert json.loads(recordings[0]["live_coverage"]) == coverage  # P12, stored at submit
    assert recordings[1]["live_coverage"] is None  # live guidance was off


def test_same_data_gives_byte_identical_shards(points_data, cap_data, tmp_path: Path) -> None:
    for dataset in ("points", "cap"):
        for fmt in ("parquet", "jsonl"):
            a, b = tmp_path / f"{dataset}-{fmt}-a", tmp_path / f"{dataset}-{fmt}-b"
            run(dataset, a, format=fmt)
            run(dataset, b, format=fmt)
            ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
            assert ma["id"] != mb["id"]
            assert ma["shard_details"] == mb["shard_details"]
            for shard in ma["shards"]:
                assert (a / shard).read_bytes() == (b / shard).read_bytes()


def test_empty_dataset_gives_an_empty_shard_with_the_schema(tmp_path: Path) -> None:
    for dataset in ("cap", "points"):
        out = tmp_path / dataset
        export = run(dataset, out)
        assert export.status == ExportStatus.DONE and export.rows_done == 0
        data = table(out)
        assert data.num_rows == 0
        assert data.schema.equals(PUBLISHED[dataset], check_metadata=False)


def test_jsonl_rows_equal_parquet_rows(points_data, tmp_path: Path) -> None:
    run("points", tmp_path / "pq")
    run("points", tmp_path / "js", format="jsonl")
    manifest = json.loads((tmp_path / "js" / "manifest.json").read_text())
    lines = (tmp_path / "js" / manifest["shards"][0]).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == table(tmp_path / "pq").to_pylist()


def test_interrupted_export_leaves_nothing_that_looks_complete(
    points_data, tmp_path: Path, monkeypatch
) -> None:
    from annotator_app.exports.images import ImageColumns

    def explode(self, raw, schema):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(ImageColumns, "finish", explode)
    out = tmp_path / "broken"
    export = services.export_create(dataset="points")
    with pytest.raises(RuntimeError, match="disk full"):
        services.export_run(export_id=export.pk, out=str(out))
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "disk full" in export.error
    assert not out.exists()
    assert list(tmp_path.glob("**/manifest.json")) == []
    assert list(tmp_path.glob(".broken.partial-*")) == []


def test_bad_requests_name_the_field(points_data, tmp_path: Path) -> None:
    for options, field in [
        ({"dataset": "nope"}, "unknown dataset"),
        ({"dataset": "points", "format": "csv"}, "format"),
        ({"dataset": "points", "status": "rejected"}, "status"),
        ({"dataset": "points", "since": "yesterday"}, "since"),
        ({"dataset": "points", "campaign": "no such campaign"}, "campaign"),
        ({"dataset": "clocks", "count": 0}, "count"),
    ]:
        with pytest.raises(services.ExportInvalid, match=field):
            services.export_create(**options)  # type: ignore[arg-type]
    assert not Export.objects.exists()


def test_campaign_and_since_filters(points_data, tmp_path: Path) -> None:
    other = helpers.campaign("points")
    helpers.points_image(other, helpers.stored_image((1, 2, 3)), [("elsewhere", [(1.0, 1.0)])])
    camp = points_data["campaign"]
    run("points", tmp_path / "one", campaign=camp.name)  # type: ignore[attr-defined]
    assert "elsewhere" not in [r["label"] for r in table(tmp_path / "one").to_pylist()]
    run("points", tmp_path / "future", since="2999-01-01")
    assert table(tmp_path / "future").num_rows == 0
