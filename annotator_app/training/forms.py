"""The admin's "Train from export" form: plain fields, checked again by the service."""

from __future__ import annotations

from typing import Any

from django import forms

from annotator_app.exports.models import Export, ExportStatus
from annotator_app.training.models import TrainedCheckpoint, TrainingStage
from annotator_app.training.services import RunRequest


class TrainFromExportForm(forms.Form):
    export = forms.ModelChoiceField(
        queryset=Export.objects.filter(status=ExportStatus.DONE),
        required=False,
        label="Export snapshot",
        help_text="a finished export (its folder is used)",
    )
    export_dir = forms.CharField(
        label="or export folder",
        max_length=1000,
        required=False,
        help_text="an export snapshot folder (manifest.json and shards) on the training machine",
    )
    stage = forms.ChoiceField(choices=TrainingStage.choices, initial=TrainingStage.CAPTION)
    preset = forms.CharField(
        max_length=64, initial="debug", help_text="model preset, e.g. debug, small-cpu, molmo-7b-d"
    )
    init_checkpoint = forms.ModelChoiceField(
        queryset=TrainedCheckpoint.objects.all(),
        required=False,
        label="Start from checkpoint",
        help_text="required for SFT",
    )
    steps = forms.IntegerField(min_value=1, initial=1000)
    batch_size = forms.IntegerField(min_value=1, initial=8)
    seq_len = forms.IntegerField(min_value=16, initial=2304, label="Sequence length")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("export") and not (data.get("export_dir") or "").strip():
            raise forms.ValidationError("Choose an export snapshot or give an export folder.")
        return data

    def run_request(self) -> RunRequest:
        data = self.cleaned_data
        return RunRequest(
            export_dir=data["export_dir"],
            stage=data["stage"],
            preset=data["preset"],
            steps=data["steps"],
            batch_size=data["batch_size"],
            seq_len=data["seq_len"],
            init_checkpoint=data["init_checkpoint"],
            export=data["export"],
        )
