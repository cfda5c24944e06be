from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "annotator_app.catalog"
    label = "catalog"

    def ready(self) -> None:
        from annotator_app.catalog.media_access import register_media_checker
        from annotator_app.catalog.selectors import image_media_grant, thumbnail_media_grant

        register_media_checker("images/", image_media_grant)
        register_media_checker("thumbs/", thumbnail_media_grant)
