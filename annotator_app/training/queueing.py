"""Enqueueing a training run by task name (routed to queue `gpu` by CELERY_TASK_ROUTES),
so that services.py does not import tasks.py."""

from __future__ import annotations

from annotator_app.celery import app

RUN = "training.run"


def enqueue_training(run_id: int) -> None:
    app.send_task(RUN, args=[run_id])
