"""URLs of the work app (pages, under /work/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.work import views

app_name = "work"

urlpatterns: list[URLPattern | URLResolver] = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("history/", views.history, name="history"),
]
