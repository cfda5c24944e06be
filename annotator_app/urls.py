"""URL map: pages, the REST API under /api/v1/, its schema and docs, and the admin."""

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotator_app.accounts import apis as account_apis
from annotator_app.accounts import views as account_views

api_v1: list[URLPattern | URLResolver] = [
    path("me/", account_apis.MeApi.as_view(), name="api-me"),
    path("auth/token/", account_apis.TokenApi.as_view(), name="api-token"),
    path("catalog/", include("annotator_app.catalog.urls")),
    path("work/", include("annotator_app.work.api_urls")),
    path("captions/", include("annotator_app.captions.api_urls")),
    path("points/", include("annotator_app.points.api_urls")),
    path("ama/", include("annotator_app.ama.api_urls")),
    path("exports/", include("annotator_app.exports.api_urls")),
]

urlpatterns = [
    path("", account_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work/", include("annotator_app.work.page_urls")),
    path("captions/", include("annotator_app.captions.page_urls")),
    path("points/", include("annotator_app.points.page_urls")),
    path("ama/", include("annotator_app.ama.page_urls")),
    path("exports/", include("annotator_app.exports.page_urls")),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without an icon link (admin, API docs).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI injects <style> elements at run time; this one page allows inline
    # styles (scripts stay strict: the split view serves its script as a file).
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema")
        ),
        name="swagger-ui",
    ),
    path("media/", include("annotator_app.catalog.media_urls")),
]
