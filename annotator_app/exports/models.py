"""An export is an immutable snapshot of one dataset: what was asked, where it went, what
it holds. Only `status`, progress and the result fields move, by compare-and-set:

    queued -> running -> done
                 |
                 +-> failed (`error` says why; nothing complete-looking is left behind)
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportFormat(models.TextChoices):
    PARQUET = "parquet", "Parquet"
    JSONL = "jsonl", "JSON lines"


class Export(models.Model):
    """One snapshot: its id names its folder (or S3 prefix)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.CharField(max_length=16)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    full = models.BooleanField(default=False, help_text="Our metadata columns too.")
    # {"campaign": id or null, "since": ISO date or null, "status": "accepted"|"all", ...}
    filters = models.JSONField(default=dict)
    include_images = models.BooleanField(default=False)
    status = models.CharField(
        max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    rows_total = models.BigIntegerField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    location = models.TextField(blank=True, default="", help_text="Folder or s3:// prefix.")
    manifest = models.JSONField(null=True, blank=True)
    code_version = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exports",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="export_status")]

    def __str__(self) -> str:
        return f"export {self.id} ({self.dataset}, {self.status})"
