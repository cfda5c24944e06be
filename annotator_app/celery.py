"""The Celery application: JSON only, late acks, one queue per kind of work."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.local")

app = Celery("annotator_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Queues: `asr` (faster-whisper, CPU/GPU heavy), `llm` (LLM calls, I/O bound), `default`.
app.conf.task_queues = (Queue("default"), Queue("asr"), Queue("llm"))
app.conf.task_default_queue = "default"
app.autodiscover_tasks()
