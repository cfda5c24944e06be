"""Django admin for training: "Train from export", each run's progress and loss chart,
the checkpoints, and which one the AMA captioner uses.

Rows change only through the services; the admin pages are views and forms over them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from annotator_app.exports.admin import ExportAdmin
from annotator_app.exports.models import Export
from annotator_app.training import selectors, services
from annotator_app.training.chart import loss_chart_svg
from annotator_app.training.forms import TrainFromExportForm
from annotator_app.training.models import CaptionerChoice, TrainedCheckpoint, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "export_dir",
        "stage",
        "preset",
        "status",
        "progress",
        "loss",
        "created_at",
    )
    list_filter = ("status", "stage")
    readonly_fields = (
        "export", "export_dir", "stage", "preset", "init_checkpoint", "steps", "batch_size",
        "seq_len", "status", "progress", "loss", "loss_chart", "run_dir", "failure_reason",
        "created_by", "created_at", "started_at", "finished_at",
    )  # fmt: skip
    fields = readonly_fields
    actions = ["run_again"]
    change_list_template = "admin/training/trainingrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from "Train from export"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="progress")
    def progress(self, run: TrainingRun) -> str:
        return f"{run.step} / {run.total_steps or run.steps}"

    @admin.display(description="loss curve")
    def loss_chart(self, run: TrainingRun) -> SafeString:
        return loss_chart_svg(run.loss_history)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "train-from-export/",
                self.admin_site.admin_view(self.train_from_export_view),
                name="training_trainingrun_train_from_export",
            )
        ]
        return own + super().get_urls()

    def train_from_export_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the form (`export` or `export_dir` query values fill it in); POST: start."""
        if not request.user.is_superuser:
            raise PermissionDenied
        if request.method == "POST":
            form = TrainFromExportForm(request.POST)
            if form.is_valid():
                try:
                    run = services.training_run_start(
                        request=form.run_request(), created_by=request.user
                    )
                except services.TrainingInputError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"Training run {run.id} queued.", messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:training_trainingrun_change", args=[run.id])
                    )
            status = 400
        else:
            initial = {k: request.GET.get(k, "") for k in ("export", "export_dir")}
            form = TrainFromExportForm(initial=initial)
            status = 200
        context = {
            **self.admin_site.each_context(request),
            "title": "Train from export",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/training/trainingrun/train_from_export.html", context, status=status
        )

    @admin.action(description="Run again with the same settings")
    def run_again(self, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
        for run in queryset:
            try:
                new = services.training_run_start(
                    request=services.RunRequest(
                        export_dir=run.export_dir, stage=run.stage, preset=run.preset,
                        steps=run.steps, batch_size=run.batch_size, seq_len=run.seq_len,
                        init_checkpoint=run.init_checkpoint,
                    ),
                    created_by=request.user,  # type: ignore[arg-type]
                )  # fmt: skip
            except services.TrainingInputError as exc:
                self.message_user(request, f"Run {run.id}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Run {run.id} queued again as run {new.id}.")


@admin.register(TrainedCheckpoint)
class TrainedCheckpointAdmin(admin.ModelAdmin):
    list_display = ("name", "preset", "steps", "final_loss", "created_at", "ama_captioner")
    readonly_fields = ("name", "path", "run", "preset", "steps", "final_loss", "created_at")
    fields = readonly_fields
    actions = ["use_for_ama", "use_newest_for_ama"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="AMA captioner", boolean=True)
    def ama_captioner(self, checkpoint: TrainedCheckpoint) -> bool:
        active = selectors.active_captioner_checkpoint()
        return active is not None and active.id == checkpoint.id

    @admin.action(description="Use for the AMA captioner", permissions=["view"])
    def use_for_ama(self, request: HttpRequest, queryset: QuerySet[TrainedCheckpoint]) -> None:
        if not request.user.is_superuser:
            raise PermissionDenied
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one checkpoint.", messages.ERROR)
            return
        checkpoint = queryset.get()
        services.captioner_choose(checkpoint=checkpoint, chosen_by=request.user)
        self.message_user(request, format_html("The AMA captioner now uses {}.", checkpoint.name))

    @admin.action(description="AMA captioner: always the newest checkpoint", permissions=["view"])
    def use_newest_for_ama(
        self, request: HttpRequest, queryset: QuerySet[TrainedCheckpoint]
    ) -> None:
        if not request.user.is_superuser:
            raise PermissionDenied
        services.captioner_choose(checkpoint=None, chosen_by=request.user)
        self.message_user(request, "The AMA captioner now uses the newest checkpoint.")


@admin.register(CaptionerChoice)
class CaptionerChoiceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "chosen_by", "updated_at")
    readonly_fields = ("checkpoint", "chosen_by", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Train from export")
def train_from_export(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Export]
) -> HttpResponse | None:
    """On the Export list: open "Train from export" with the selected snapshot."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Choose exactly one export.", messages.ERROR)
        return None
    url = reverse("admin:training_trainingrun_train_from_export")
    return HttpResponseRedirect(f"{url}?{urlencode({'export': str(queryset.get().id)})}")


# The exports app does not know about training (apps depend one way); training adds its
# action to the Export list.
ExportAdmin.actions = [*(getattr(ExportAdmin, "actions", None) or []), train_from_export]  # type: ignore[misc]
