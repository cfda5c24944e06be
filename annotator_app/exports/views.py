"""The admin page "Export" (/exports/): start a snapshot, watch it, download it.

A plain form (it works without JavaScript); exports.ts refreshes the progress of running
snapshots from the API. Only admins see or use it (403 for everyone else).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotator_app.accounts.permissions import is_admin
from annotator_app.exports import selectors, services
from annotator_app.exports.models import ExportFormat
from annotator_app.exports.sources import SOURCES
from annotator_app.exports.sources.base import STATUS_CHOICES
from annotator_app.work.models import Campaign


def _start(request: HttpRequest) -> str | None:
    """Start the export the form asks for; the error message when it is refused."""
    form = request.POST
    count = form.get("count", "").strip()
    if count and not count.isdigit():
        return f"count: {count!r} is not a whole number"
    try:
        export = services.export_create(
            dataset=form.get("dataset", ""),
            format=form.get("format", ExportFormat.PARQUET),
            full=form.get("full") == "on",
            campaign=form.get("campaign") or None,
            since=form.get("since") or None,
            status=form.get("status", "accepted"),
            include_images=form.get("images") == "on",
            count=int(count) if count else None,
            user=request.user,
        )
    except services.ExportInvalid as exc:
        return str(exc)
    services.export_enqueue(export=export)
    messages.success(request, f"Export {export.pk} of {export.dataset} started.")
    return None


@login_required
@require_http_methods(["GET", "POST"])
def export_page(request: HttpRequest) -> HttpResponse:
    if not is_admin(request.user):
        raise PermissionDenied("Only admins may export.")
    error = None
    if request.method == "POST":
        error = _start(request)
        if error is None:
            return redirect("exports:page")
    exports = [
        (e, selectors.export_rows_done(export=e), selectors.export_files(export=e))
        for e in selectors.exports_recent()
    ]
    context = {
        "datasets": sorted(SOURCES),
        "formats": ExportFormat.choices,
        "statuses": sorted(STATUS_CHOICES),
        "campaigns": Campaign.objects.order_by("name"),
        "exports": exports,
        "error": error,
        "form": request.POST if error else {},
    }
    return render(request, "exports/index.html", context, status=400 if error else 200)
