"""The admin's "Import images" pages: a form (files and/or URLs), then a progress page.

The form starts an ImportJob (annotator_app/catalog/import_jobs.py), run by a Celery
worker; the progress page shows how many items are done and the outcome of each, and
the frontend (frontend/src/admin/importProgress.ts) refreshes it from the JSON view
every second until the job ends. Without the script the page refreshes by its link.
Only platform admins reach these views (checked here, besides the admin site's own
staff check).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from annotator_app.accounts.permissions import is_admin
from annotator_app.catalog.import_jobs import ImportJobInvalid, import_job_create
from annotator_app.catalog.models import ImportJob, ImportJobStatus, Topic


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files (none too); each is checked by the import, not here."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data]
        return [f for f in files if f]


class ImportForm(forms.Form):
    image_files = MultipleFileField(
        required=False,
        label="Image files",
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
        help_text="JPEG, PNG, WebP or GIF; each is checked by its content.",
    )
    urls = forms.CharField(
        required=False,
        label="URLs",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "spellcheck": "false"}),
        help_text="One http(s):// URL or s3://bucket/prefix per line.",
    )
    topics = forms.ModelMultipleChoiceField(
        Topic.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )


def _admin_only(request: HttpRequest) -> None:
    if not is_admin(request.user):
        raise PermissionDenied("Only admins import images.")


def import_form_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    _admin_only(request)
    form = ImportForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                job = import_job_create(
                    created_by=request.user,
                    urls=form.cleaned_data["urls"].splitlines(),
                    files=form.cleaned_data["image_files"],
                    topics=list(form.cleaned_data["topics"]),
                )
            except ImportJobInvalid as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("admin:catalog_image_import_job", job_id=job.pk)
        status = 400
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import images",
        "opts": model_admin.model._meta,
        "form": form,
        "recent": ImportJob.objects.filter(created_by_id=request.user.pk)[:10],
    }
    return TemplateResponse(request, "admin/catalog/image/import.html", context, status=status)


def job_state(job: ImportJob) -> dict[str, Any]:
    """What the progress page shows, as JSON for the script that refreshes it."""
    return {
        "id": job.pk,
        "status": job.status,
        "finished": job.status in (ImportJobStatus.DONE, ImportJobStatus.FAILED),
        "total": job.total,
        "done": job.done,
        "counts": job.counts,
        "error": job.error,
        "outcomes": job.outcomes,
    }


def _job(request: HttpRequest, job_id: int) -> ImportJob:
    _admin_only(request)
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404("no such import")
    return job


def import_job_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, job_id: int
) -> HttpResponse:
    job = _job(request, job_id)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Import {job.pk}",
        "opts": model_admin.model._meta,
        "job": job,
        "state": job_state(job),
    }
    return TemplateResponse(request, "admin/catalog/image/import_job.html", context)


def import_job_status_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, job_id: int
) -> JsonResponse:
    return JsonResponse(job_state(_job(request, job_id)))
