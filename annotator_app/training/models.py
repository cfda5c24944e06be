"""Training runs started from an export, the checkpoints they register, and the one
row that says which checkpoint the AMA captioner uses.

The trainer itself is `python -m model_service.train`, run as a subprocess by the Celery
task on queue `gpu` (tasks.py); these rows only record what it was asked and what it
reported (its RUN_DIR/progress.json), so the platform never imports the model code.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingStage(models.TextChoices):
    CAPTION = "caption", "Caption pre-training"
    SFT = "sft", "Fine-tuning (SFT)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TrainingRun(models.Model):
    """One `python -m model_service.train` run on one export snapshot folder."""

    export_dir = models.CharField(max_length=1000, help_text="export folder with manifest.json")
    export = models.ForeignKey(
        "exports.Export",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_runs",
        help_text="the export snapshot the folder belongs to, when started from one",
    )
    stage = models.CharField(max_length=16, choices=TrainingStage.choices)
    preset = models.CharField(max_length=64)
    init_checkpoint = models.ForeignKey(
        "TrainedCheckpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="SFT starts from this checkpoint",
    )
    steps = models.PositiveIntegerField()
    batch_size = models.PositiveIntegerField()
    seq_len = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    run_dir = models.CharField(max_length=1000, blank=True)
    # Copied from the trainer's progress.json while it runs.
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    loss_history = models.JSONField(default=list, blank=True)  # [[step, loss], ...]
    failure_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training run {self.id} ({self.stage}, {self.preset}, {self.status})"


class TrainedCheckpoint(models.Model):
    """A checkpoint folder the model service can serve (`serve --checkpoint PATH`)."""

    name = models.CharField(
        max_length=200, unique=True, help_text="the model id the service answers to"
    )
    path = models.CharField(max_length=1000, unique=True)
    run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="checkpoint"
    )
    preset = models.CharField(max_length=64)
    steps = models.PositiveIntegerField()
    final_loss = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class CaptionerChoice(models.Model):
    """The single row (id 1) naming the AMA captioner's checkpoint; none = the newest."""

    checkpoint = models.ForeignKey(
        TrainedCheckpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"AMA captioner: {self.checkpoint or 'newest checkpoint'}"
