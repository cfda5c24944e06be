"""URLs of the work app (REST API, under /api/v1/work/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.work import apis

app_name = "work-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("campaigns/", apis.CampaignListCreateApi.as_view(), name="campaigns"),
    path("campaigns/<int:campaign_id>/", apis.CampaignDetailApi.as_view(), name="campaign"),
    path(
        "campaigns/<int:campaign_id>/review-queue/",
        apis.ReviewQueueApi.as_view(),
        name="review-queue",
    ),
    path(
        "campaigns/<int:campaign_id>/accept-bulk/",
        apis.AcceptBulkApi.as_view(),
        name="accept-bulk",
    ),
    path(
        "campaigns/<int:campaign_id>/progress/",
        apis.CampaignProgressApi.as_view(),
        name="campaign-progress",
    ),
    path("next/", apis.NextApi.as_view(), name="next"),
    path("history/", apis.HistoryApi.as_view(), name="history"),
    path("progress/me/", apis.MyProgressApi.as_view(), name="my-progress"),
    path("assignments/<int:assignment_id>/", apis.AssignmentDetailApi.as_view(), name="assignment"),
    path(
        "assignments/<int:assignment_id>/heartbeat/",
        apis.HeartbeatApi.as_view(),
        name="heartbeat",
    ),
    path("assignments/<int:assignment_id>/skip/", apis.SkipApi.as_view(), name="skip"),
    path("assignments/<int:assignment_id>/release/", apis.ReleaseApi.as_view(), name="release"),
    path("assignments/<int:assignment_id>/verdict/", apis.VerdictApi.as_view(), name="verdict"),
]
