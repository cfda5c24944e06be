"""Celery tasks of the catalog: running an import started from the browser."""

from __future__ import annotations

from celery import shared_task

from annotator_app.catalog import import_jobs


@shared_task(name=import_jobs.RUN_TASK, ignore_result=True)
def import_job_run(job_id: int) -> None:
    """Import the job's URLs and uploaded files, recording an outcome per item."""
    import_jobs.import_job_run(job_id=job_id)
