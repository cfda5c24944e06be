"""Enqueueing AMA and CapQA tasks by name, so services never import tasks.py."""

from __future__ import annotations

from annotator_app.celery import app

ANSWER = "ama.answer"
CAPQA_CAPTION = "ama.capqa_caption"
SWEEP = "ama.sweep"


def enqueue_answer(round_id: int) -> None:
    app.send_task(ANSWER, args=[round_id])


def enqueue_capqa_caption(run_id: int, caption_id: int) -> None:
    app.send_task(CAPQA_CAPTION, args=[run_id, caption_id])
