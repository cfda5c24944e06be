"""URLs of the captions app (pages, under /captions/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.captions import views

app_name = "captions"

urlpatterns: list[URLPattern | URLResolver] = [
    path("capture/", views.capture, name="capture"),
    path("history/", views.history, name="history"),
]
