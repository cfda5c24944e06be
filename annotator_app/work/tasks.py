"""Celery tasks of the work engine: the periodic sweep of expired leases."""

from __future__ import annotations

from celery import shared_task

from annotator_app.work.services import RECLAIM_BATCH, assignments_reclaim_expired

# One sweep stops after this many batches, so a huge backlog cannot pin a worker.
MAX_BATCHES = 200


@shared_task(name="work.reclaim_expired_leases", ignore_result=True)
def reclaim_expired_leases() -> int:
    """Mark every lease past its end expired and free its slot; returns how many."""
    total = 0
    for _ in range(MAX_BATCHES):
        reclaimed = assignments_reclaim_expired()
        total += reclaimed
        if reclaimed < RECLAIM_BATCH:
            break
    return total
