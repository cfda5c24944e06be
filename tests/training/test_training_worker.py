"""A run through a real Celery worker on queue `gpu` and the real trainer (a subprocess
of `python -m model_service.train` on the debug preset), real PostgreSQL and Redis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from annotator_app.training import selectors, services
from annotator_app.training.models import RunStatus, TrainedCheckpoint, TrainingRun
from tests.captions.pipeline_helpers import wait_until, worker
from tests.training.helpers import write_cap_export

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def roots(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.TRAINING_EXPORT_ROOTS = [tmp_path / "exports"]
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    settings.TRAINING_POLL_SECONDS = 0.5
    return tmp_path


def _start(export: Path, admin) -> TrainingRun:  # type: ignore[no-untyped-def]
    request = services.RunRequest(
        export_dir=str(export), stage="caption", preset="debug", steps=4, batch_size=4,
        seq_len=160,
    )  # fmt: skip
    with transaction.atomic():  # the message leaves on commit
        return services.training_run_start(request=request, created_by=admin)


def _finished(run: TrainingRun) -> bool:
    return TrainingRun.objects.filter(
        id=run.id, status__in=(RunStatus.DONE, RunStatus.FAILED)
    ).exists()


def test_a_run_trains_reports_progress_and_registers_its_checkpoint(roots: Path, cast) -> None:
    export = write_cap_export(roots / "exports" / "cap-1")
    with worker(queues="gpu"):
        run = _start(export, cast.admin)
        wait_until(lambda: _finished(run), timeout=900, what="the training run to end")

    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.failure_reason
    assert (run.step, run.total_steps) == (4, 4)
    assert [step for step, _ in run.loss_history] == [1, 2, 3, 4]
    assert run.loss == run.loss_history[-1][1] and run.loss > 0
    checkpoint = TrainedCheckpoint.objects.get(run=run)
    assert checkpoint.name == f"train-run-{run.id}" and checkpoint.steps == 4
    assert Path(checkpoint.path) == roots / "runs" / f"train-run-{run.id}" / "checkpoint"
    assert (Path(checkpoint.path) / "model.safetensors").is_file()
    assert selectors.active_captioner_checkpoint() == checkpoint

    client = Client()
    client.force_login(cast.admin)
    page = client.get(reverse("admin:training_trainingrun_change", args=[run.id])).content.decode()
    points = re.search(r'<polyline points="([^"]+)"', page)
    assert points is not None and len(points.group(1).split()) == 4


def test_a_failing_trainer_marks_the_run_failed_with_its_error(roots: Path, cast) -> None:
    # The manifest passes the platform's checks but names a dataset the trainer does not
    # know: the trainer itself refuses it, as it would a corrupt snapshot.
    export = write_cap_export(roots / "exports" / "odd", dataset="pixmo-unknown")
    with worker(queues="gpu"):
        run = _start(export, cast.admin)
        wait_until(lambda: _finished(run), timeout=900, what="the training run to end")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "pixmo-unknown" in run.failure_reason and "exit status" in run.failure_reason
    assert run.finished_at is not None
    assert not TrainedCheckpoint.objects.exists()
    assert (roots / "runs" / f"train-run-{run.id}" / "train.log").is_file()
