from django.apps import AppConfig


class WorkConfig(AppConfig):
    name = "annotator_app.work"
    label = "work"
