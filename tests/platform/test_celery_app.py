"""The Celery app: a message sent to one queue reaches that queue only (real Redis)."""

from __future__ import annotations

import uuid

from annotator_app.celery import QUEUE_NAMES, app


def test_queues_have_distinct_bindings() -> None:
    bindings = {(q.exchange.name, q.routing_key) for q in app.conf.task_queues}
    assert len(bindings) == len(QUEUE_NAMES)


def test_a_message_for_one_queue_lands_in_that_queue_only() -> None:
    with app.connection_for_write() as conn:
        redis = conn.default_channel.client  # kombu keeps each queue as a Redis list
        for name in QUEUE_NAMES:
            redis.delete(name)
        for queue in app.conf.task_queues:
            queue(conn.default_channel).declare()
        app.send_task("probe.task", args=[str(uuid.uuid4())], queue="asr", connection=conn)
        sizes = {name: redis.llen(name) for name in QUEUE_NAMES}
        for name in QUEUE_NAMES:
            redis.delete(name)
    assert set(QUEUE_NAMES) == {"default", "asr", "llm", "ama", "gpu", "live"}
    assert sizes == {name: int(name == "asr") for name in QUEUE_NAMES}


def test_ama_answers_have_their_own_queue_and_capqa_runs_on_llm() -> None:
    from django.conf import settings

    assert settings.CELERY_TASK_ROUTES["ama.answer"] == {"queue": "ama"}
    assert settings.CELERY_TASK_ROUTES["ama.capqa_caption"] == {"queue": "llm"}
