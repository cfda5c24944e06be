from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "annotator_app.catalog"
    label = "catalog"
