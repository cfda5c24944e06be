"""What a dataset source is, and the SQL source that streams rows out of PostgreSQL.

A source yields Arrow record batches in its *raw* schema: the dataset's columns, except
that `image_url` and `image_sha256` are replaced by the private columns `_image_key`
(storage key) and `_image_sha256`; the engine (services.py) turns those into the
published image columns (a base URL, a signed URL, or a file shipped in the snapshot).

`SqlSource` builds one JSON object per row with the ORM (`JSONObject`, subqueries) and
streams ``COPY (that query) TO STDOUT`` into Arrow's JSON reader
(pipelines/export_writer.json_lines_batches): the database does the row assembly, no
Python object is made per row, and memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa
from django.conf import settings
from django.db import connection
from django.db.models import CharField, F, Func, QuerySet, Value
from django.db.models.functions import Cast, Concat, JSONObject, Left

from annotator_app.work.models import AssignmentStatus
from pipelines.export_writer import json_lines_batches
from pipelines.pixmo_schemas import DatasetSchema

IMAGE_COLUMNS = ("image_url", "image_sha256")
PRIVATE_IMAGE_FIELDS = (
    pa.field("_image_key", pa.string()),
    pa.field("_image_sha256", pa.string()),
    pa.field("_image_id", pa.int64()),  # counts distinct images while streaming
)
STATUS_CHOICES = {
    "accepted": (AssignmentStatus.ACCEPTED,),
    # Everything a reviewer has not rejected: accepted plus submitted, awaiting review.
    "all": (AssignmentStatus.ACCEPTED, AssignmentStatus.SUBMITTED),
}
# psycopg2's COPY in CSV mode with quote and delimiter characters that JSON text never
# holds raw (it escapes control characters), so each line is the JSON object verbatim.
COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


class SourceError(ValueError):
    """A request this source cannot serve (shown to the admin as a 400)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: the filters and options of one snapshot."""

    dataset: str
    full: bool = False
    campaign_id: int | None = None
    since: datetime | None = None
    status: str = "accepted"
    count: int | None = None  # synthetic sources: how many examples
    seed: int = 0

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(str(s) for s in STATUS_CHOICES[self.status])


@dataclass(frozen=True)
class Counts:
    rows: int
    images: int | None = None  # None: counted while streaming


@dataclass
class SourceContext:
    """What a source may use while streaming: a staging folder, a way to ship images."""

    staging: Path
    put_image: Callable[[str, Callable[[], bytes]], bool]
    extra: dict[str, Any] = field(default_factory=dict)


class Source:
    """A dataset: its schema, its card text, how its rows are counted and streamed."""

    key: ClassVar[str]
    schema: ClassVar[DatasetSchema]
    title: ClassVar[str]
    what: ClassVar[str]
    how_collected: ClassVar[str]
    column_notes: ClassVar[dict[str, str]] = {}
    has_image_columns: ClassVar[bool] = True
    uses_filters: ClassVar[bool] = True
    shard_rows: ClassVar[int] = 500_000
    row_group_rows: ClassVar[int] = 50_000

    def raw_schema(self, full: bool) -> pa.Schema:
        """The schema `batches` yields (see the module docstring)."""
        columns = [f for f in self.schema.schema(full) if f.name not in IMAGE_COLUMNS]
        if self.has_image_columns:
            columns += PRIVATE_IMAGE_FIELDS
        return pa.schema(columns)

    def count(self, request: ExportRequest) -> Counts:
        raise NotImplementedError

    def batches(self, request: ExportRequest, context: SourceContext) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError


def annotator_hash(field_path: str) -> Func:
    """An anonymised annotator id: 16 hex digits of SHA-256(salt + user id), stable."""
    salted = Concat(
        Value(settings.EXPORT_ANNOTATOR_SALT),
        Cast(field_path, CharField()),
        output_field=CharField(),
    )
    # PostgreSQL's built-in sha256() (Django's SHA256 needs the pgcrypto extension).
    digest = Func(
        salted,
        template="ENCODE(SHA256(CONVERT_TO(%(expressions)s, 'UTF8')), 'hex')",
        output_field=CharField(),
    )
    return Left(digest, 16)


class SqlSource(Source):
    """A source whose rows are one ORM query: `rows` gives the ordered queryset and
    `row_object` the JSON object of a row (keys = raw schema columns)."""

    image_path: ClassVar[str]  # ORM path to the row's catalog Image, e.g. "annotation__image"

    def rows(self, request: ExportRequest) -> QuerySet[Any]:
        raise NotImplementedError

    def row_object(self, request: ExportRequest) -> dict[str, Any]:
        raise NotImplementedError

    def count(self, request: ExportRequest) -> Counts:
        """Rows only (for the progress bar); distinct images are counted while streaming,
        which spares the database a second DISTINCT pass over the rows."""
        return Counts(rows=self.rows(request).order_by().count())

    def image_object(self) -> dict[str, Any]:
        return {
            "_image_key": f"{self.image_path}__storage_key",
            "_image_sha256": f"{self.image_path}__sha256",
            "_image_id": f"{self.image_path}__id",
        }

    def json_sql(self, request: ExportRequest) -> str:
        """The SELECT of one JSON object per row, in the source's order, params inlined."""
        fields = {**self.row_object(request)}
        for name, path in self.image_object().items():
            fields[name] = F(path)
        query = self.rows(request).annotate(_row=JSONObject(**fields)).values_list("_row")
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            return cursor.mogrify(sql, params).decode()

    def copy_sql(self, request: ExportRequest) -> str:
        return f"COPY ({self.json_sql(request)}) TO STDOUT WITH {COPY_OPTIONS}"

    def batches(self, request: ExportRequest, context: SourceContext) -> Iterator[pa.RecordBatch]:
        statement = self.copy_sql(request)
        connection.ensure_connection()
        raw = connection.connection  # psycopg2's own connection: usable from the COPY thread

        def produce(sink: IO[bytes]) -> None:
            with raw.cursor() as cursor:
                cursor.copy_expert(statement, sink, size=1 << 20)

        yield from json_lines_batches(produce, self.raw_schema(request.full))
