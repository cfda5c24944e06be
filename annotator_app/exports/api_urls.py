"""URLs of the exports API (under /api/v1/exports/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.exports import apis

app_name = "exports-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", apis.ExportListCreateApi.as_view(), name="exports"),
    path("<str:export_id>/", apis.ExportDetailApi.as_view(), name="export"),
    path("<str:export_id>/files/<path:name>", apis.ExportFileApi.as_view(), name="file"),
]
