"""Imports started from the browser: store the uploads, queue a job, run it with progress.

The job runs the same code as `manage.py import_images`: `sources_list` lists the
pasted URLs and s3:// prefixes, `stored_upload_item` wraps each uploaded file, and
`item_import` checks, stores and records every item, so the checks and the reasons a
person reads are the same. Only the bookkeeping is the job's: its row counts the items,
appends one outcome per item as it goes (the page polls it) and can resume after a
worker died mid-way (a redelivered task continues after the last recorded outcome).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from annotator_app.catalog.models import ImportJob, ImportJobStatus, Topic
from annotator_app.catalog.services import ImportOutcome, item_import, sources_list
from annotator_app.catalog.sources import SourceItem, stored_upload_item
from annotator_app.celery import app

logger = logging.getLogger(__name__)

RUN_TASK = "catalog.import_job_run"
SWEEP_TASK = "catalog.import_jobs_sweep"
SOURCE_SCHEMES = ("http://", "https://", "s3://")
NAME_MAX_CHARS = 200


class ImportJobInvalid(ValueError):
    """The form cannot start an import; the message says why."""


def _display_name(name: str | None) -> str:
    """The uploaded file's own name, for people to recognise it: no folders, bounded."""
    base = PurePath((name or "").replace("\\", "/")).name.strip()
    return (base or "unnamed")[:NAME_MAX_CHARS]


def import_job_validate(*, urls: Sequence[str], file_count: int) -> list[str]:
    """The URLs to import (blank lines and # comments dropped); ImportJobInvalid says why not."""
    kept = [u.strip() for u in urls if u.strip() and not u.strip().startswith("#")]
    if not kept and not file_count:
        raise ImportJobInvalid("choose at least one image file or paste at least one URL")
    limit = settings.IMPORT_JOB_MAX_ITEMS
    if len(kept) + file_count > limit:
        raise ImportJobInvalid(
            f"{file_count} files and {len(kept)} URLs: at most {limit} per import "
            "(use `manage.py import_images` for bulk imports)"
        )
    for url in kept:
        if len(url) > 2048:
            raise ImportJobInvalid(f"{url[:60]!r}…: a URL may hold at most 2048 characters")
        if not url.lower().startswith(SOURCE_SCHEMES):
            raise ImportJobInvalid(f"{url[:200]!r}: only http(s):// URLs and s3:// URIs")
    return kept


def import_job_create(
    *,
    created_by: Any,
    urls: Sequence[str] = (),
    files: Sequence[UploadedFile] = (),
    topics: Sequence[Topic] = (),
) -> ImportJob:
    """Check the form, store the uploaded files, create the job and queue it on commit.

    Files over IMAGE_MAX_BYTES are not stored; the job reports them as too large. If
    anything fails before the row exists, the files stored so far are deleted again.
    """
    kept = import_job_validate(urls=urls, file_count=len(files))
    batch = uuid.uuid4().hex
    stored: list[str] = []
    try:
        uploads = []
        for n, upload in enumerate(files):
            size = int(upload.size or 0)
            key = ""
            if size <= settings.IMAGE_MAX_BYTES:
                key = default_storage.save(f"imports/{batch}/{n}", upload)
                stored.append(key)
            uploads.append({"key": key, "name": _display_name(upload.name), "size": size})
        with transaction.atomic():
            job = ImportJob.objects.create(created_by=created_by, sources=kept, uploads=uploads)
            job.topics.set(topics)
            transaction.on_commit(lambda: app.send_task(RUN_TASK, args=[job.pk]))
    except BaseException:
        for key in stored:
            default_storage.delete(key)
        raise
    return job


def import_jobs_requeue_lost(*, older_than_seconds: int) -> int:
    """Queue again the jobs still waiting after `older_than_seconds` (their message was
    lost, e.g. with a broker restart); how many. The run's compare-and-set makes a
    second message for a job that did start harmless. Running jobs need no help: late
    acks hand a dead worker's message to another one, which resumes the job."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    lost = list(
        ImportJob.objects.filter(status=ImportJobStatus.QUEUED, created_at__lt=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    for job_id in lost:
        app.send_task(RUN_TASK, args=[job_id])
    return len(lost)


def _items(job: ImportJob) -> tuple[list[SourceItem], list[ImportOutcome]]:
    items, refused = sources_list(sources=job.sources, allow_local_paths=False)
    items += [stored_upload_item(**upload) for upload in job.uploads]
    return items, refused


def _as_row(outcome: ImportOutcome) -> dict[str, Any]:
    return {
        "source": outcome.source,
        "status": outcome.status.value,
        "reason": outcome.reason,
        "image_id": outcome.image.pk if outcome.image is not None else None,
    }


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run (or resume) one job; None when it is not waiting or running.

    Queued -> running is a compare-and-set, so two deliveries of one message do not
    both start it; a job found running was left by a worker that died (late acks
    deliver the message again) and continues after its last recorded outcome.
    """
    now = timezone.now()
    started = ImportJob.objects.filter(pk=job_id, status=ImportJobStatus.QUEUED).update(
        status=ImportJobStatus.RUNNING, started_at=now
    )
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or (not started and job.status != ImportJobStatus.RUNNING):
        return None
    try:
        _run(job)
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _finish(job, status=ImportJobStatus.FAILED, error=f"{exc.__class__.__name__}: {exc}")
        return job
    _finish(job, status=ImportJobStatus.DONE)
    return job


def _run(job: ImportJob) -> None:
    items, refused = _items(job)
    limit = settings.IMPORT_JOB_MAX_ITEMS
    if len(items) > limit:
        raise ImportJobInvalid(
            f"the sources hold {len(items)} items; at most {limit} per import "
            "(use `manage.py import_images` for bulk imports)"
        )
    outcomes = list(job.outcomes) or [_as_row(o) for o in refused]
    ImportJob.objects.filter(pk=job.pk).update(total=len(refused) + len(items), outcomes=outcomes)
    topics = list(job.topics.all())
    for item in items[len(outcomes) - len(refused) :]:
        outcome, _ = item_import(item=item, topics=topics, created_by=job.created_by)
        outcomes.append(_as_row(outcome))
        ImportJob.objects.filter(pk=job.pk).update(outcomes=outcomes)


def _finish(job: ImportJob, *, status: str, error: str = "") -> None:
    for upload in job.uploads:
        if upload["key"]:
            default_storage.delete(upload["key"])
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, error=error, finished_at=timezone.now()
    )
    job.refresh_from_db()
