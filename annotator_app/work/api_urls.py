"""URLs of the work app (REST API, under /api/v1/work/)."""

from django.urls import URLPattern, URLResolver

app_name = "work-api"

urlpatterns: list[URLPattern | URLResolver] = []
