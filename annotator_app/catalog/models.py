"""Catalog: the images annotators work on, and the topics admins group them by."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Topic(models.Model):
    """An admin-defined label grouping images (e.g. "clocks", "charts")."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ImageFormat(models.TextChoices):
    JPEG = "jpeg", "JPEG"
    PNG = "png", "PNG"
    WEBP = "webp", "WebP"
    GIF = "gif", "GIF"


class Image(models.Model):
    """One stored image, identified by the SHA-256 of its bytes.

    The file lives in the default storage under `storage_key`, a content-addressed name
    (`images/ab/cd/<sha256>.<ext>`); `mime` comes from the content check at import and
    is the only content type the file is ever served with.
    """

    sha256 = models.CharField(max_length=64, unique=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8, choices=ImageFormat.choices)
    mime = models.CharField(max_length=32)
    size_bytes = models.PositiveBigIntegerField()
    source_url = models.TextField(blank=True, default="")
    storage_key = models.CharField(max_length=200, unique=True)
    topics = models.ManyToManyField(Topic, related_name="images", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="imported_images",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["format"])]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}.{self.format} ({self.width}x{self.height})"


class ImportJobStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class ImportJob(models.Model):
    """An import started from the browser, run by a Celery worker, watched for progress.

    `uploads` are the files sent with the form, stored under `imports/` before the job is
    queued (store first, process after) and deleted when it finishes: each entry is
    {"key", "name", "size"}, with an empty key when the file was over the size limit and
    so never stored. `outcomes` grows by one {"source", "status", "reason", "image_id"}
    per item, in order, so `len(outcomes)` of `total` is the progress.
    """

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="import_jobs",
    )
    status = models.CharField(
        max_length=8, choices=ImportJobStatus.choices, default=ImportJobStatus.QUEUED
    )
    sources = models.JSONField(default=list, blank=True)
    uploads = models.JSONField(default=list, blank=True)
    topics = models.ManyToManyField(Topic, blank=True, related_name="import_jobs")
    total = models.PositiveIntegerField(null=True, blank=True)
    outcomes = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.status})"

    @property
    def done(self) -> int:
        return len(self.outcomes)

    @property
    def counts(self) -> dict[str, int]:
        counts = {"imported": 0, "duplicate": 0, "rejected": 0}
        for outcome in self.outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        return counts
