"""pixmo-clocks: synthetic watch faces rendered by the model service's generator.

The platform never imports model_service (ARCHITECTURE.md): the generator runs as its
command, `python -m model_service.clocks`, into the staging folder, and its rows are
re-read and written as this snapshot's shards, its images shipped as
``images/<example_id>.png`` (the public set ships metadata only; ours ships the images).
Example i depends only on (seed, i), so the same count and seed give the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from annotator_app.exports.sources.base import (
    Counts,
    ExportRequest,
    Source,
    SourceContext,
    SourceError,
)
from pipelines import pixmo_schemas

DEFAULT_COUNT = 1000
MAX_COUNT = 1_000_000
READ_BATCH_ROWS = 4096


class ClocksSource(Source):
    key = "clocks"
    schema = pixmo_schemas.DATASETS["clocks"]
    title = "PixMo-Clocks (synthetic)"
    what = (
        "Analog clock and watch faces rendered at random times, with the time they show; "
        "the images are in images/<example_id>.png."
    )
    how_collected = (
        "Generated, not annotated: each example draws a face style (shape, numerals, ticks, "
        "hands, colours, rotation, background) and a time from its own seeded generator "
        "(model_service/clocks.py). Hours are on a 12-hour dial; a face drawn without "
        "hands has hour/minute/second_visible = -1."
    )
    column_notes: ClassVar[dict[str, str]] = {
        "example_id": "names the image: images/<example_id>.png",
        "hour_visible": "hour on the 12-hour dial, -1 when hidden",
        "text": "the answer to 'What time is being shown?'",
    }
    has_image_columns = False
    uses_filters = False
    row_group_rows = 16_384

    def _count(self, request: ExportRequest) -> int:
        count = DEFAULT_COUNT if request.count is None else request.count
        if not 1 <= count <= MAX_COUNT:
            raise SourceError(f"clocks: count must be in 1..{MAX_COUNT}, got {count}")
        return count

    def count(self, request: ExportRequest) -> Counts:
        count = self._count(request)
        return Counts(rows=count, images=count)

    def batches(self, request: ExportRequest, context: SourceContext) -> Iterator[pa.RecordBatch]:
        out = context.staging / "clocks-generated"
        command = [
            sys.executable,
            "-m",
            "model_service.clocks",
            "--out",
            str(out),
            "--n",
            str(self._count(request)),
            "--seed",
            str(request.seed),
        ]
        done = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
            command, cwd=settings.BASE_DIR, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"model_service.clocks failed: {done.stderr.strip()[-2000:]}")
        schema = self.raw_schema(request.full)
        for shard in sorted(out.glob("*.parquet")):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=READ_BATCH_ROWS):
                for example_id in batch.column("example_id").to_pylist():
                    image = out / "images" / f"{example_id}.png"
                    context.put_image(image.name, image.read_bytes)
                    image.unlink()
                yield batch.cast(schema)
        shutil.rmtree(out, ignore_errors=True)
