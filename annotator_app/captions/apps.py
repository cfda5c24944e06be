from django.apps import AppConfig


class CaptionsConfig(AppConfig):
    name = "annotator_app.captions"
    label = "captions"

    def ready(self) -> None:
        from annotator_app.captions.selectors import recording_media_grant
        from annotator_app.catalog.media_access import register_media_checker

        register_media_checker("audio/", recording_media_grant)
