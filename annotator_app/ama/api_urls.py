"""URLs of the AMA app (REST API, under /api/v1/ama/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.ama import apis

app_name = "ama-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("sessions/<int:session_id>/", apis.SessionDetailApi.as_view(), name="session"),
    path("sessions/<int:session_id>/ask/", apis.AskApi.as_view(), name="ask"),
    path("sessions/<int:session_id>/skip/", apis.SkipApi.as_view(), name="skip"),
    path("rounds/<int:round_id>/accept/", apis.AcceptApi.as_view(), name="accept"),
    path("rounds/<int:round_id>/reject/", apis.RejectApi.as_view(), name="reject"),
    path("rounds/<int:round_id>/retry/", apis.RetryApi.as_view(), name="retry"),
]
