from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "annotator_app.points"
    label = "points"
