from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "annotator_app.accounts"
    label = "accounts"
