"""URLs of the points app (REST API, under /api/v1/points/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.points import apis

app_name = "points-api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("annotations/", apis.AnnotationListCreateApi.as_view(), name="annotations"),
    path("annotations/<int:annotation_id>/", apis.AnnotationDetailApi.as_view(), name="annotation"),
    path(
        "campaigns/<int:campaign_id>/agreement/",
        apis.CampaignAgreementApi.as_view(),
        name="campaign-agreement",
    ),
    path(
        "agreements/<int:agreement_id>/decision/",
        apis.DecisionApi.as_view(),
        name="decision",
    ),
]
