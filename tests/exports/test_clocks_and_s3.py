"""Clocks through the model service's generator (run as a command), and snapshots on S3
(moto's server): multipart shards, manifest last, signed image URLs, nothing complete-
looking after a failure."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from annotator_app.exports import services
from annotator_app.exports.models import ExportStatus
from model_service import data as molmo_data
from pipelines.export_writer import S3Sink
from tests.exports import helpers
from tests.exports.test_engine import PUBLISHED

pytestmark = pytest.mark.django_db


def test_clocks_export_ships_images_and_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        export = services.export_create(dataset="clocks", count=3, seed=7)
        services.export_run(export_id=export.pk, out=str(tmp_path / name))
        outs.append(tmp_path / name)
    manifest = json.loads((outs[0] / "manifest.json").read_text())
    assert manifest["dataset"] == "pixmo-clocks" and manifest["rows"] == 3
    data = pq.read_table(outs[0] / manifest["shards"][0])
    assert data.schema.equals(PUBLISHED["clocks"], check_metadata=False)
    source = molmo_data.load_source(outs[0])
    assert len(source.groups) == 3 and all(g.path.suffix == ".png" for g in source.groups)
    for name in [
        *manifest["shards"],
        *(f"images/{r}.png" for r in data.column("example_id").to_pylist()),
    ]:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


@pytest.fixture
def export_bucket(s3, settings) -> str:  # type: ignore[no-untyped-def]
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    settings.EXPORT_S3_BUCKET = bucket
    settings.EXPORT_S3_PREFIX = "snapshots"
    return bucket


def test_s3_snapshot_with_signed_image_urls(s3, export_bucket: str, settings) -> None:  # type: ignore[no-untyped-def]
    media = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=media)
    camp = helpers.campaign("points")
    image = helpers.stored_image((1, 2, 3))
    s3.put_object(Bucket=media, Key=image.storage_key, Body=b"image bytes")
    long_label = "a very long label " * 8
    for i in range(40):
        helpers.points_image(camp, image, [(f"{long_label}{i}", [(float(i), 50.0)])])
    settings.AWS_STORAGE_BUCKET_NAME = media
    settings.EXPORT_SIGNED_URL_SECONDS = 3600

    export = services.export_create(dataset="points", format="jsonl")
    done = services.export_run(export_id=export.pk)
    assert done.status == ExportStatus.DONE
    prefix = f"snapshots/{export.pk}"
    assert done.location == f"s3://{export_bucket}/{prefix}/"
    keys = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=export_bucket, Prefix=prefix)["Contents"]
    )
    assert keys == [
        f"{prefix}/README.md",
        f"{prefix}/data/train-00000.jsonl",
        f"{prefix}/manifest.json",
    ]
    manifest = json.loads(
        s3.get_object(Bucket=export_bucket, Key=f"{prefix}/manifest.json")["Body"].read()
    )
    assert manifest["image_urls"] == {"mode": "signed", "expires_in_seconds": 3600}
    body = s3.get_object(Bucket=export_bucket, Key=f"{prefix}/data/train-00000.jsonl")[
        "Body"
    ].read()
    rows = [json.loads(line) for line in io.BytesIO(body)]
    assert len(rows) == 40 and manifest["shard_details"][0]["bytes"] == len(body)
    signed = rows[0]["image_url"]
    assert "Expires=" in signed or "X-Amz-Expires=3600" in signed
    assert requests.get(signed, timeout=10).content == b"image bytes"  # the URL works


def test_s3_multipart_shard_and_failed_upload_leaves_no_manifest(
    s3, export_bucket: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sink = S3Sink(s3, export_bucket, "direct/one")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (S3Sink.MULTIPART_BYTES * 2 + 10))
    sink.put_file(big, "data/train-00000.parquet")
    head = s3.head_object(Bucket=export_bucket, Key="direct/one/data/train-00000.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: a multipart upload
    sink.abort()
    assert s3.list_objects_v2(Bucket=export_bucket, Prefix="direct/one/")["KeyCount"] == 0

    camp = helpers.campaign("points")
    helpers.points_image(camp, helpers.stored_image(), [("dog", [(1.0, 1.0)])])
    from pipelines import export_writer

    def refuse(self, manifest):  # type: ignore[no-untyped-def]
        raise ConnectionError("S3 went away")

    monkeypatch.setattr(export_writer.S3Sink, "commit", refuse)
    export = services.export_create(dataset="points")
    with pytest.raises(ConnectionError):
        services.export_run(export_id=export.pk, out=f"s3://{export_bucket}/failed/run")
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "S3 went away" in export.error
    assert s3.list_objects_v2(Bucket=export_bucket, Prefix="failed/")["KeyCount"] == 0
