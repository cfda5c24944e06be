"""The Celery task of a training run (queue `gpu`): an id in, one service call.

Acknowledged on receipt, not late: a training run holds the worker for hours, longer than
any broker visibility timeout, and must not be delivered to a second worker while the
first still trains. A run whose worker died stays `running`; the admin's "Run again"
starts a new run with the same settings.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from annotator_app.training import queueing, services


@shared_task(
    name=queueing.RUN,
    acks_late=False,
    time_limit=settings.TRAINING_TIME_LIMIT + 60,
    soft_time_limit=settings.TRAINING_TIME_LIMIT,
)
def run_training(run_id: int) -> str:
    run = services.training_run_execute(run_id)
    return "skipped" if run is None else run.status
