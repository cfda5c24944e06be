"""Reads of the training app; `active_captioner_checkpoint` is what the AMA loop asks."""

from __future__ import annotations

from annotator_app.training.models import CaptionerChoice, TrainedCheckpoint


def active_captioner_checkpoint() -> TrainedCheckpoint | None:
    """The checkpoint the AMA captioner uses: the admin's choice, else the newest one,
    else None (no trained checkpoint yet). `.name` is the model id to send to the model
    service (`serve --checkpoint <.path>` answers to it), `.path` its folder."""
    choice = CaptionerChoice.objects.select_related("checkpoint").filter(id=1).first()
    if choice is not None and choice.checkpoint is not None:
        return choice.checkpoint
    return TrainedCheckpoint.objects.order_by("-created_at", "-id").first()
