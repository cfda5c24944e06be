"""Export writes: create a snapshot request, run it (the engine), mark it failed.

`export_run` is the one engine behind the command, the page and the API: it claims the
row (queued -> running, compare-and-set), counts, streams the source's batches through
the image columns into pipelines/export_writer.py, writes the dataset card, and commits
the manifest last. Progress goes to the cache while streaming (the database connection
is busy with the COPY) and to the row at the end. Any error aborts the sink (nothing
complete-looking remains) and leaves the row failed with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time as clock
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotator_app.exports.images import ImageColumns, image_mode
from annotator_app.exports.models import Export, ExportFormat, ExportStatus
from annotator_app.exports.sources import source_get
from annotator_app.exports.sources.base import (
    STATUS_CHOICES,
    ExportRequest,
    Source,
    SourceContext,
)
from annotator_app.exports.sources.base import SourceError as ExportInvalid
from annotator_app.work.models import Campaign
from pipelines.dataset_card import CardFacts, render_card
from pipelines.export_writer import (
    CARD,
    LocalSink,
    S3Sink,
    Sink,
    SnapshotWriter,
    WriterSettings,
    build_manifest,
)

logger = logging.getLogger(__name__)
PROGRESS_TIMEOUT = 24 * 3600
PROGRESS_EVERY_SECONDS = 0.5
Progress = Callable[[int, int | None], None]

__all__ = ["ExportInvalid", "export_create", "export_fail", "export_run", "exports_sweep"]


@cache
def code_version() -> str:
    """`git describe` of the running code, or PIXMO_CODE_VERSION where there is no git."""
    if os.environ.get("PIXMO_CODE_VERSION"):
        return os.environ["PIXMO_CODE_VERSION"]
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],  # noqa: S607
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def parse_since(value: str | date | datetime | None) -> datetime | None:
    """A date (midnight UTC) or an ISO date-time; ExportInvalid names a bad one."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    text = str(value).strip()
    try:
        moment = parse_datetime(text)
        day = parse_date(text) if moment is None else None
    except ValueError:
        moment = day = None
    if moment is not None:
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
    if day is not None:
        return datetime.combine(day, time.min, tzinfo=UTC)
    raise ExportInvalid(f"since: {text!r} is not a date (YYYY-MM-DD) or an ISO date-time")


def _campaign_id(campaign: str | int | None) -> int | None:
    if campaign in (None, ""):
        return None
    text = str(campaign).strip()
    found = Campaign.objects.filter(pk=int(text)) if text.isdigit() else None
    if found is None or not found.exists():
        found = Campaign.objects.filter(name=text)
    pk = found.values_list("pk", flat=True).first()
    if pk is None:
        raise ExportInvalid(f"campaign: no campaign with id or name {text!r}")
    return int(pk)


def export_create(
    *,
    dataset: str,
    format: str = ExportFormat.PARQUET,
    full: bool = False,
    campaign: str | int | None = None,
    since: str | date | datetime | None = None,
    status: str = "accepted",
    include_images: bool = False,
    count: int | None = None,
    seed: int = 0,
    user: Any = None,
) -> Export:
    """Validate a request and store it queued; ExportInvalid names the bad field."""
    source = source_get(dataset)
    if format not in ExportFormat.values:
        raise ExportInvalid(f"format: {format!r} is not one of {', '.join(ExportFormat.values)}")
    if status not in STATUS_CHOICES:
        raise ExportInvalid(f"status: {status!r} is not one of {', '.join(STATUS_CHOICES)}")
    request = ExportRequest(
        dataset=dataset,
        full=full,
        campaign_id=_campaign_id(campaign) if source.uses_filters else None,
        since=parse_since(since) if source.uses_filters else None,
        status=status,
        count=count,
        seed=seed,
    )
    filters: dict[str, Any] = (
        {
            "campaign": request.campaign_id,
            "since": request.since.isoformat() if request.since else None,
            "status": status,
        }
        if source.uses_filters
        else {"count": source.count(request).rows, "seed": seed}
    )
    return Export.objects.create(
        dataset=dataset,
        format=format,
        full=full,
        filters=filters,
        include_images=include_images,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        code_version=code_version(),
    )


def export_enqueue(*, export: Export) -> None:
    """Send the export's Celery job once the row is committed."""
    from annotator_app.celery import app

    transaction.on_commit(lambda: app.send_task("exports.run", args=[str(export.pk)]))


def _request(export: Export) -> ExportRequest:
    filters = export.filters or {}
    return ExportRequest(
        dataset=export.dataset,
        full=export.full,
        campaign_id=filters.get("campaign"),
        since=parse_since(filters.get("since")),
        status=filters.get("status", "accepted"),
        count=filters.get("count"),
        seed=int(filters.get("seed", 0)),
    )


def _sink(export: Export, out: str | None) -> Sink:
    target = out or (
        f"s3://{settings.EXPORT_S3_BUCKET}/{settings.EXPORT_S3_PREFIX}/{export.pk}"
        if settings.EXPORT_S3_BUCKET
        else str(Path(settings.EXPORT_ROOT) / str(export.pk))
    )
    if target.startswith("s3://"):
        bucket, _, prefix = target[len("s3://") :].partition("/")
        if not bucket or not prefix.strip("/"):
            raise ExportInvalid(f"out: {target!r} needs s3://bucket/prefix")
        from annotator_app.catalog.sources import s3_client  # boto3 only when used

        return S3Sink(s3_client(), bucket, prefix)
    return LocalSink(Path(target))


def progress_key(export_id: uuid.UUID | str) -> str:
    return f"exports:progress:{export_id}"


def export_run(
    *, export_id: uuid.UUID | str, out: str | None = None, progress: Progress | None = None
) -> Export:
    """Run a queued export to the end (see the module docstring); returns the row."""
    claimed = Export.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    )
    export = Export.objects.get(pk=export_id)
    if not claimed:
        logger.info("export %s is %s; not run again", export_id, export.status)
        return export
    staging = Path(tempfile.mkdtemp(prefix=f"pixmo-export-{export.pk}-"))
    sink: Sink | None = None
    try:
        sink = _sink(export, out)
        _write_snapshot(export, sink, staging, progress)
    except BaseException as exc:
        if sink is not None:
            sink.abort()
        export_fail(export_id=export.pk, reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        django_cache.delete(progress_key(export.pk))
    export.refresh_from_db()
    return export


def _write_snapshot(export: Export, sink: Sink, staging: Path, progress: Progress | None) -> None:
    """Count, stream every batch into shards, then the card and (last) the manifest."""
    source = source_get(export.dataset)
    request = _request(export)
    counts = source.count(request)
    Export.objects.filter(pk=export.pk).update(rows_total=counts.rows, location=sink.location)
    schema = source.schema.schema(export.full)
    writer = SnapshotWriter(
        sink=sink,
        schema=schema,
        settings=WriterSettings(
            format=export.format,
            shard_rows=source.shard_rows,
            row_group_rows=source.row_group_rows,
        ),
        staging=staging,
    )
    images = ImageColumns(
        mode=image_mode(include_images=export.include_images), put_image=sink.put_image
    )
    context = SourceContext(staging=staging, put_image=sink.put_image)
    seen, reported = 0, 0.0
    for raw in source.batches(request, context):
        writer.write(images.finish(raw, schema) if source.has_image_columns else raw)
        seen += raw.num_rows
        if clock.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
            reported = clock.monotonic()
            django_cache.set(progress_key(export.pk), seen, PROGRESS_TIMEOUT)
            if progress is not None:
                progress(seen, counts.rows)
    if progress is not None:
        progress(seen, counts.rows)
    shards = writer.close()
    distinct = images.distinct_images if source.has_image_columns else (counts.images or 0)
    mode = images.mode if source.has_image_columns else "bundled"
    card = _card(export, source, schema, rows=writer.rows, images=distinct)
    (staging / CARD).write_text(card, encoding="utf-8")
    sink.put_file(staging / CARD, CARD)
    url_facts: dict[str, Any] = {"mode": mode}
    if mode == "signed":
        url_facts["expires_in_seconds"] = settings.EXPORT_SIGNED_URL_SECONDS
    manifest = build_manifest(
        dataset=source.schema.name,
        full=export.full,
        schema=schema,
        settings=writer.settings,
        shards=shards,
        rows=writer.rows,
        metadata={
            "id": str(export.pk),
            "created_at": export.created_at.isoformat(),
            "filters": export.filters,
            "code_version": export.code_version,
            "images": distinct,
            "image_urls": url_facts,
            "licence": settings.EXPORT_LICENSE,
        },
    )
    sink.commit(manifest)
    Export.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        rows_done=writer.rows,
        manifest=json.loads(manifest),
        finished_at=timezone.now(),
        error="",
    )


def _card(export: Export, source: Source, schema: pa.Schema, *, rows: int, images: int) -> str:
    return render_card(
        CardFacts(
            dataset=source.schema.name,
            title=source.title,
            what=source.what,
            how_collected=source.how_collected,
            schema=schema,
            data_glob=f"data/train-*.{export.format}",
            rows=rows,
            images=images,
            licence=settings.EXPORT_LICENSE,
            snapshot_id=str(export.pk),
            created_at=export.created_at.isoformat(),
            code_version=export.code_version,
            filters=export.filters,
            column_notes=source.column_notes,
        )
    )


def export_fail(*, export_id: uuid.UUID | str, reason: str) -> None:
    """Mark a queued or running export failed with `reason` (done ones stay done)."""
    Export.objects.filter(
        pk=export_id, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    ).update(status=ExportStatus.FAILED, error=reason[:4000], finished_at=timezone.now())


def exports_sweep() -> dict[str, int]:
    """The beat task's work: a queued export whose message was lost is sent again (the
    claim makes a duplicate harmless); a running one past the job's time limit lost its
    worker and is marked failed (its hidden partial folder never looked complete)."""
    now = timezone.now()
    queued = Export.objects.filter(
        status=ExportStatus.QUEUED,
        created_at__lt=now - timedelta(seconds=settings.PIPELINE_STUCK_SECONDS),
    )
    resent = 0
    for export in queued:
        export_enqueue(export=export)
        resent += 1
    lost = Export.objects.filter(
        status=ExportStatus.RUNNING,
        started_at__lt=now - timedelta(seconds=settings.EXPORT_TIME_LIMIT + 60),
    ).update(
        status=ExportStatus.FAILED,
        error="the export job stopped without finishing (worker killed or lost); start a new one",
        finished_at=now,
    )
    return {"resent": resent, "failed": lost}
