"""Catalog API under /api/v1/catalog/."""

from django.urls import path

from annotator_app.catalog import apis

urlpatterns = [
    path("imports/", apis.ImportApi.as_view(), name="catalog-import"),
    path("import-jobs/", apis.ImportJobCreateApi.as_view(), name="catalog-import-jobs"),
    path(
        "import-jobs/<int:job_id>/",
        apis.ImportJobDetailApi.as_view(),
        name="catalog-import-job",
    ),
    path("images/", apis.ImageListApi.as_view(), name="catalog-image-list"),
    path("images/<int:image_id>/", apis.ImageDetailApi.as_view(), name="catalog-image-detail"),
    path("topics/", apis.TopicListCreateApi.as_view(), name="catalog-topics"),
]
