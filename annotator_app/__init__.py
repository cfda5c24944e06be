"""The PixMo annotation platform (Django project)."""

from annotator_app.celery import app as celery_app

__all__ = ["celery_app"]
