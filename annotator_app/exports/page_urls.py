"""URLs of the exports page (under /exports/)."""

from django.urls import URLPattern, URLResolver, path

from annotator_app.exports import views

app_name = "exports"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.export_page, name="page"),
]
