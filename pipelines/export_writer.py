"""Dataset snapshots: Arrow record batches in, shards + manifest.json + README.md out.

A snapshot is written to a *sink* (a local folder or an S3 prefix). Shards are staged
one at a time in a local folder, hashed, and handed to the sink; `manifest.json` is
the very last object written, so a reader (model_service.data, the platform's export
list) never mistakes an interrupted export for a complete one: a local snapshot is
built under a hidden ``.<name>.partial-*`` folder and renamed into place at the end;
an S3 snapshot without its manifest is incomplete by definition (and `abort` deletes
what was uploaded).

Determinism: rows arrive in the source's fixed order; shards hold exactly
`shard_rows` rows and parquet row groups exactly `row_group_rows` rows (whatever the
sizes of the incoming batches), with fixed compression and writer options, so the same
rows give byte-identical shards with the same pyarrow version (recorded in the manifest).
Memory stays bounded by one row group plus the incoming batch, whatever the total.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

FORMATS = ("parquet", "jsonl")
MANIFEST = "manifest.json"
CARD = "README.md"
SHARD_DIR = "data"
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": True,
}


class Sink(Protocol):
    """Where a snapshot's files go."""

    location: str

    def put_file(self, path: Path, name: str) -> None:
        """Store the staged file `path` as `name` (relative to the snapshot root)."""

    def put_image(self, name: str, read: Callable[[], bytes]) -> bool:
        """Store image `name` (under images/) unless present; True when it was written."""

    def commit(self, manifest: bytes) -> None:
        """Write the manifest last; the snapshot is complete after this."""

    def abort(self) -> None:
        """Remove whatever was written; nothing looks complete afterwards."""


class LocalSink:
    """A snapshot folder; built under a hidden partial folder and renamed at commit."""

    def __init__(self, final: Path) -> None:
        final = final.resolve()
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise FileExistsError(f"{final}: exists and is not an empty folder")
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.location = str(final)
        self.root = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))

    def put_file(self, path: Path, name: str) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() != target.resolve():
            shutil.move(path, target)

    def put_image(self, name: str, read: Callable[[], bytes]) -> bool:
        target = self.root / "images" / name
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read())
        return True

    def commit(self, manifest: bytes) -> None:
        (self.root / MANIFEST).write_bytes(manifest)
        if self.final.exists():
            self.final.rmdir()  # empty, checked at start
        os.replace(self.root, self.final)

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class S3Sink:
    """A snapshot under ``s3://bucket/prefix/``: multipart uploads, manifest last."""

    MULTIPART_BYTES = 8 * 1024 * 1024

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}/"
        listed = client.list_objects_v2(Bucket=bucket, Prefix=self.prefix + "/", MaxKeys=1)
        if listed.get("KeyCount", 0):
            raise FileExistsError(f"{self.location}: the prefix already holds objects")
        self.config = TransferConfig(
            multipart_threshold=self.MULTIPART_BYTES, multipart_chunksize=self.MULTIPART_BYTES
        )
        self.written: list[str] = []

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put_file(self, path: Path, name: str) -> None:
        key = self._key(name)
        self.written.append(key)
        self.client.upload_file(str(path), self.bucket, key, Config=self.config)
        path.unlink()

    def put_image(self, name: str, read: Callable[[], bytes]) -> bool:
        key = self._key(f"images/{name}")
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return False
        except self.client.exceptions.ClientError:
            pass
        self.written.append(key)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=read())
        return True

    def commit(self, manifest: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(MANIFEST),
            Body=manifest,
            ContentType="application/json",
        )

    def abort(self) -> None:
        for start in range(0, len(self.written), 1000):
            chunk = self.written[start : start + 1000]
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk]}
            )


@dataclass(frozen=True)
class WriterSettings:
    format: str = "parquet"
    shard_rows: int = 500_000
    row_group_rows: int = 50_000

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.shard_rows < 1 or self.row_group_rows < 1:
            raise ValueError("shard_rows and row_group_rows must be positive")


@dataclass
class ShardInfo:
    name: str
    rows: int
    bytes: int
    sha256: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonl_lines(table: pa.Table) -> Iterator[bytes]:
    for row in table.to_pylist():
        yield (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass
class SnapshotWriter:
    """Cuts a stream of batches (already in `schema`) into shards of the sink."""

    sink: Sink
    schema: pa.Schema
    settings: WriterSettings
    staging: Path
    shards: list[ShardInfo] = field(default_factory=list)
    rows: int = 0
    _pending: list[pa.RecordBatch] = field(default_factory=list)
    _pending_rows: int = 0
    _shard_rows: int = 0
    _parquet: pq.ParquetWriter | None = None
    _jsonl: IO[bytes] | None = None

    def _shard_path(self) -> tuple[str, Path]:
        name = f"{SHARD_DIR}/train-{len(self.shards):05d}.{self.settings.format}"
        return name, self.staging / name

    def _open(self) -> None:
        _, path = self._shard_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.settings.format == "parquet":
            self._parquet = pq.ParquetWriter(path, self.schema, **PARQUET_OPTIONS)
        else:
            self._jsonl = path.open("wb")

    def _close(self) -> None:
        name, path = self._shard_path()
        if self._parquet is not None:
            self._parquet.close()
        if self._jsonl is not None:
            self._jsonl.close()
        self._parquet = self._jsonl = None
        info = ShardInfo(name, self._shard_rows, path.stat().st_size, _sha256(path))
        self.sink.put_file(path, name)
        self.shards.append(info)
        self._shard_rows = 0

    def _write_group(self, table: pa.Table) -> None:
        """Write at most one row group, never across a shard boundary."""
        if self._parquet is None and self._jsonl is None:
            self._open()
        if self._parquet is not None:
            self._parquet.write_table(table, row_group_size=table.num_rows)
        elif self._jsonl is not None:
            self._jsonl.writelines(_jsonl_lines(table))
        self._shard_rows += table.num_rows
        self.rows += table.num_rows
        if self._shard_rows >= self.settings.shard_rows:
            self._close()

    def _drain(self, final: bool) -> None:
        size = min(self.settings.row_group_rows, self.settings.shard_rows)
        while self._pending_rows >= size or (final and self._pending_rows):
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            # A group never crosses a shard boundary, so shards do not depend on batches.
            take = min(size, self.settings.shard_rows - self._shard_rows, table.num_rows)
            self._write_group(table.slice(0, take).combine_chunks())
            rest = table.slice(take)
            self._pending = rest.to_batches()
            self._pending_rows = rest.num_rows

    def write(self, batch: pa.RecordBatch) -> None:
        """Append rows; `batch.schema` must equal the snapshot's schema."""
        if not batch.schema.equals(self.schema):
            raise ValueError(f"batch schema {batch.schema} differs from {self.schema}")
        if batch.num_rows:
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            self._drain(final=False)

    def close(self) -> list[ShardInfo]:
        """Flush; an empty dataset still gets one (empty) shard holding the schema."""
        self._drain(final=True)
        if self._parquet is None and self._jsonl is None and not self.shards:
            self._open()
        if self._parquet is not None or self._jsonl is not None:
            self._close()
        return self.shards


def schema_description(schema: pa.Schema) -> list[dict[str, str]]:
    """The columns and their Arrow types, as written into the manifest and the card."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def build_manifest(
    *,
    dataset: str,
    full: bool,
    schema: pa.Schema,
    settings: WriterSettings,
    shards: list[ShardInfo],
    rows: int,
    metadata: dict[str, Any],
) -> bytes:
    """manifest.json (CONTRACT.md §Exports fields first, then what this snapshot is)."""
    body: dict[str, Any] = {
        "dataset": dataset,
        "format": settings.format,
        "shards": [s.name for s in shards],
        "rows": rows,
        "variant": "full" if full else "default",
        "schema": schema_description(schema),
        "shard_details": [s.__dict__ for s in shards],
        "writer": {
            "pyarrow": pa.__version__,
            "shard_rows": settings.shard_rows,
            "row_group_rows": settings.row_group_rows,
            **({"parquet": PARQUET_OPTIONS} if settings.format == "parquet" else {}),
        },
        **metadata,
    }
    return (json.dumps(body, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()


# --- reading a COPY stream -----------------------------------------------------------------


def json_lines_batches(
    produce: Callable[[IO[bytes]], None], schema: pa.Schema, block_bytes: int = 1 << 20
) -> Iterator[pa.RecordBatch]:
    """Batches of `schema` parsed from newline-delimited JSON that `produce` writes.

    `produce(file)` runs in a thread and writes into a pipe (for example psycopg2's
    ``copy_expert`` of ``COPY (SELECT json ...) TO STDOUT``); Arrow's JSON reader parses
    the other end block by block, so memory stays bounded by a few blocks. An error in
    `produce` is raised here; leaving the loop early stops the producer.
    """
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink:
                produce(sink)
        except BaseException as exc:  # handed to the reading thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="export-copy", daemon=True)
    thread.start()
    # Buffered: a pipe read returns at most what the pipe holds (64 KiB); the buffer
    # hands Arrow whole blocks, so batches have thousands of rows, not hundreds.
    source = os.fdopen(read_fd, "rb", buffering=block_bytes)
    try:
        reader = pa_json.open_json(
            source,
            read_options=pa_json.ReadOptions(block_size=block_bytes, use_threads=False),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        if "Empty JSON" not in str(exc):
            raise
    finally:
        source.close()  # a producer still writing gets a broken pipe and stops
        thread.join()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise failure[0]
