from django.apps import AppConfig


class CaptionsConfig(AppConfig):
    name = "annotator_app.captions"
    label = "captions"
