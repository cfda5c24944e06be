"""URLs of the captions app (REST API, under /api/v1/captions/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.captions import apis, live_apis

app_name = "captions-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("recordings/", apis.RecordingListCreateApi.as_view(), name="recordings"),
    path(
        "recordings/<int:recording_id>/",
        apis.RecordingDetailApi.as_view(),
        name="recording-detail",
    ),
    # P12 live guidance while speaking
    path("live/<int:assignment_id>/", live_apis.LiveApi.as_view(), name="live"),
]
