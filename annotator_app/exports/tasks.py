"""The export's Celery job (queue `default`): an id in, the engine runs, the row says how
it went. A failure is stored on the row by the engine; it is not retried (an admin starts
a new snapshot), and a redelivered message finds the row no longer queued and stops."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from annotator_app.exports import services


@shared_task(
    name="exports.run",
    acks_late=True,
    time_limit=settings.EXPORT_TIME_LIMIT,
    soft_time_limit=settings.EXPORT_TIME_LIMIT - 30,
)
def run_export(export_id: str) -> str:
    export = services.export_run(export_id=export_id)
    return f"export {export_id}: {export.status}, {export.rows_done} rows"


@shared_task(name="exports.sweep")
def sweep_exports() -> dict[str, int]:
    return services.exports_sweep()
