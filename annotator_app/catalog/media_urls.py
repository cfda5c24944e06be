"""/media/<key>: every stored file goes through the permission-checked view."""

from django.urls import path

from annotator_app.catalog.views import media_serve

urlpatterns = [path("<path:key>", media_serve, name="media")]
