"""/media/<key>: every stored file goes through the permission-checked view."""

from django.urls import path

from annotator_app.catalog.views import image_thumbnail, media_serve

urlpatterns = [
    path("thumbnails/<int:image_id>.jpg", image_thumbnail, name="image-thumbnail"),
    path("<path:key>", media_serve, name="media"),
]
