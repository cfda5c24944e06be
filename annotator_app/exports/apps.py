from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "annotator_app.exports"
    label = "exports"
