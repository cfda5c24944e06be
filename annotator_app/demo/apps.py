from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "annotator_app.demo"
    label = "demo"
