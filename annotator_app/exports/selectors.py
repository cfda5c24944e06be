"""Export reads: past snapshots, live progress, the files of a finished local snapshot."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.core.cache import cache
from django.db.models import QuerySet

from annotator_app.exports.models import Export, ExportStatus
from annotator_app.exports.services import progress_key

LIST_LIMIT = 100


def exports_recent(*, limit: int = LIST_LIMIT) -> QuerySet[Export]:
    return Export.objects.select_related("created_by").order_by("-created_at")[:limit]


def export_get(*, export_id: uuid.UUID | str) -> Export | None:
    try:
        pk = export_id if isinstance(export_id, uuid.UUID) else uuid.UUID(str(export_id))
    except ValueError:  # not a UUID: no such export
        return None
    return Export.objects.select_related("created_by").filter(pk=pk).first()


def export_rows_done(*, export: Export) -> int:
    """Rows written so far: the live counter while running, the stored count after."""
    if export.status == ExportStatus.RUNNING:
        return int(cache.get(progress_key(export.pk)) or 0)
    return export.rows_done


def export_files(*, export: Export) -> list[str]:
    """Downloadable files of a finished local snapshot (names relative to its folder)."""
    if export.status != ExportStatus.DONE or not export.manifest:
        return []
    if export.location.startswith("s3://"):
        return []
    return ["manifest.json", "README.md", *export.manifest.get("shards", [])]


def export_file_path(*, export: Export, name: str) -> Path | None:
    """The file `name` of a finished local snapshot, only when the manifest lists it."""
    if name not in export_files(export=export):
        return None
    path = Path(export.location) / name
    return path if path.is_file() else None
