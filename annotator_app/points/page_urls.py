"""URLs of the points app (pages, under /points/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.points import views

app_name = "points"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.annotate, name="annotate"),
    path("review/", views.review_index, name="review"),
    path("review/<int:campaign_id>/", views.review_queue, name="review-queue"),
    path("review/verdict/<int:assignment_id>/", views.review_verdict, name="review-verdict"),
    path("review/decide/<int:agreement_id>/", views.review_decide, name="review-decide"),
]
