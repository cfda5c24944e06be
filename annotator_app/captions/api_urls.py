"""URLs of the captions app (REST API, under /api/v1/captions/)."""

from django.urls import URLPattern, URLResolver

app_name = "captions-api"

urlpatterns: list[URLPattern | URLResolver] = []
