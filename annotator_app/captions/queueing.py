"""Enqueueing the pipeline's stages by task name, so that nothing below tasks.py imports it.

The layers run one way: tasks.py (Celery entry points) -> pipeline.py / maintenance.py
(services) -> queueing.py. A stage that finishes enqueues the next one through these
functions; Celery routes the message by name (CELERY_TASK_ROUTES), and tasks.py
registers its tasks under the same names. The project's Celery app is used by name, not
`current_app`, which in a thread that did not create it falls back to a default app
with another broker.
"""

from __future__ import annotations

from annotator_app.celery import app

TRANSCRIBE = "captions.transcribe"
CLEAN = "captions.clean"
SUMMARIZE = "captions.summarize"
SWEEP = "captions.pipeline_sweep"


def enqueue_transcribe(recording_id: int) -> None:
    app.send_task(TRANSCRIBE, args=[recording_id])


def enqueue_clean(recording_id: int) -> None:
    app.send_task(CLEAN, args=[recording_id])


def enqueue_summary(summary_id: int) -> None:
    app.send_task(SUMMARIZE, args=[summary_id])


# P12 live guidance: one step of a take's live transcript (queue `live`). Expiring: a
# step not started in time is dropped, since the next chunk enqueues a fresh one.
LIVE_STEP = "captions.live_step"


def enqueue_live_step(assignment_id: int, take: str, *, expires: int) -> None:
    app.send_task(LIVE_STEP, args=[assignment_id, take], expires=expires)
