"""The Celery application: JSON only, late acks, one queue per kind of work."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.local")

# Queues: `asr` (faster-whisper, CPU/GPU heavy), `llm` (LLM calls, I/O bound), `ama` (AMA
# answers an annotator waits for: OCR, captioner and LLM calls), `gpu` (training runs, one
# at a time per GPU worker), `live` (P12's streaming transcript while speaking; its own
# worker, never delays `asr`), `default`.
# Each has its own exchange and routing key, stated rather than left to defaults, so a
# broker other than Redis routes the same way.
QUEUE_NAMES = ("default", "asr", "llm", "ama", "gpu", "live")

app = Celery("annotator_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUE_NAMES)
app.conf.task_default_queue = "default"
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.autodiscover_tasks()
