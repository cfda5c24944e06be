from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "annotator_app.training"
    label = "training"
    verbose_name = "Model training"
