from django.apps import AppConfig


class AmaConfig(AppConfig):
    name = "annotator_app.ama"
    label = "ama"
    verbose_name = "AskModelAnything and CapQA"
