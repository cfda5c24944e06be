"""URLs of the AMA app (pages, under /ama/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.ama import views

app_name = "ama"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.annotate, name="annotate"),
    path("review/", views.review_index, name="review"),
    path("review/<int:campaign_id>/", views.review_queue, name="review-queue"),
    path("review/verdict/<int:assignment_id>/", views.review_verdict, name="review-verdict"),
]
