"""Celery tasks of the catalog: running an import started from the browser."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from annotator_app.catalog import import_jobs


@shared_task(name=import_jobs.RUN_TASK, ignore_result=True)
def import_job_run(job_id: int) -> None:
    """Import the job's URLs and uploaded files, recording an outcome per item."""
    import_jobs.import_job_run(job_id=job_id)


@shared_task(name=import_jobs.SWEEP_TASK, ignore_result=True)
def import_jobs_sweep() -> int:
    """Queue again the imports whose message was lost (beat, every few minutes)."""
    return import_jobs.import_jobs_requeue_lost(
        older_than_seconds=settings.IMPORT_JOB_STUCK_SECONDS
    )
