"""Celery tasks of the work engine: the lease sweep and the counter check."""

from __future__ import annotations

import logging

from celery import shared_task

from annotator_app.work.claiming import reopened_prune
from annotator_app.work.counters import counters_repair
from annotator_app.work.services import RECLAIM_BATCH, assignments_reclaim_expired

logger = logging.getLogger(__name__)

# One sweep stops after this many batches, so a huge backlog cannot pin a worker.
MAX_BATCHES = 200


@shared_task(name="work.reclaim_expired_leases", ignore_result=True)
def reclaim_expired_leases() -> int:
    """Mark every lease past its end expired and free its slot; returns how many.

    Also drops reopened-item entries whose item is full again."""
    total = 0
    for _ in range(MAX_BATCHES):
        reclaimed = assignments_reclaim_expired()
        total += reclaimed
        if reclaimed < RECLAIM_BATCH:
            break
    reopened_prune()
    return total


@shared_task(name="work.repair_counters", ignore_result=True)
def repair_counters() -> dict[int, int]:
    """Check every campaign's counters against its rows and repair drift; returns
    {campaign id: drifted counter rows} and logs a warning when any drifted."""
    drifted = counters_repair()
    if drifted:
        logger.warning("work counters drifted and were repaired: %s", drifted)
    return drifted
