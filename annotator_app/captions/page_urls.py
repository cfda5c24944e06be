"""URLs of the captions app (pages, under /captions/)."""

from django.urls import URLPattern, URLResolver

app_name = "captions"

urlpatterns: list[URLPattern | URLResolver] = []
