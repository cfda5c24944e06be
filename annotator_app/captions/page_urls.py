"""URLs of the captions app (pages, under /captions/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.captions import views

app_name = "captions"

urlpatterns: list[URLPattern | URLResolver] = [
    path("capture/", views.capture, name="capture"),
    path("history/", views.history, name="history"),
    path("review/", views.review_index, name="review"),
    path("review/<int:campaign_id>/", views.review_queue, name="review-queue"),
    path("review/verdict/<int:assignment_id>/", views.review_verdict, name="review-verdict"),
    path(
        "review/<int:campaign_id>/accept-shown/",
        views.review_accept_shown,
        name="review-accept-shown",
    ),
]
