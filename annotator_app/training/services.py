"""Starting a training run from an export, following it, registering what it produced,
and choosing the AMA captioner's checkpoint.

A run moves queued -> running -> done | failed by compare-and-set, so a message
delivered twice starts one trainer. The trainer is `python -m model_service.train` in a
subprocess (annotator_app never imports model_service); it writes RUN_DIR/progress.json
after every step, which `training_run_execute` copies into the row while it waits.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotator_app.accounts.models import User
from annotator_app.exports.models import Export, ExportStatus
from annotator_app.training import queueing
from annotator_app.training.models import (
    CaptionerChoice,
    RunStatus,
    TrainedCheckpoint,
    TrainingRun,
    TrainingStage,
)

PRESET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LONGEST_RECIPE_WARMUP = 2000  # steps; the stage defaults' longest warmup (model_service)
LOG_NAME = "train.log"
LOG_TAIL_CHARS = 2000


class TrainingInputError(ValueError):
    """A request to train that cannot be carried out; the message names the problem."""


@dataclass(frozen=True)
class RunRequest:
    """What an admin asks for when training from an export."""

    export_dir: str
    stage: str
    preset: str
    steps: int
    batch_size: int
    seq_len: int
    init_checkpoint: TrainedCheckpoint | None = None
    export: Export | None = None  # when set, its folder is used and export_dir ignored


def export_dir_check(raw: str) -> Path:
    """The export folder as a resolved path, or TrainingInputError naming what is wrong.

    It must lie inside one of TRAINING_EXPORT_ROOTS (after resolving links and `..`), hold
    a manifest.json naming a dataset and its shards, and every shard must exist.
    """
    if not raw.strip():
        raise TrainingInputError("export folder: give a path")
    path = Path(raw.strip()).expanduser().resolve()
    roots = [Path(root).resolve() for root in settings.TRAINING_EXPORT_ROOTS]
    if not any(path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise TrainingInputError(f"export folder {path} is outside the export roots ({allowed})")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise TrainingInputError(f"export folder {path} has no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingInputError(f"{manifest_path} is not readable JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("dataset"), str):
        raise TrainingInputError(f"{manifest_path} names no dataset")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not shards:
        raise TrainingInputError(f"{manifest_path} lists no shards")
    for shard in shards:
        shard_path = (path / str(shard)).resolve()
        if not shard_path.is_relative_to(path) or not shard_path.is_file():
            raise TrainingInputError(f"{manifest_path}: shard {shard!r} is missing")
    return path


def _check_request(request: RunRequest) -> Path:
    if request.stage not in TrainingStage.values:
        raise TrainingInputError(f"stage {request.stage!r} is not one of {TrainingStage.values}")
    if not PRESET_PATTERN.match(request.preset):
        raise TrainingInputError(f"preset {request.preset!r} is not a preset name")
    for name in ("steps", "batch_size"):
        if getattr(request, name) < 1:
            raise TrainingInputError(f"{name} must be at least 1")
    if request.seq_len < 16:
        raise TrainingInputError("seq_len must be at least 16 tokens")
    if request.stage == TrainingStage.SFT and request.init_checkpoint is None:
        raise TrainingInputError("stage sft starts from a checkpoint: choose one")
    if request.export is not None:
        return export_folder(request.export)
    return export_dir_check(request.export_dir)


def export_folder(export: Export) -> Path:
    """The folder of a finished local export snapshot (P7), checked like a typed path."""
    if export.status != ExportStatus.DONE:
        raise TrainingInputError(f"export {export.id} is {export.status}, not done")
    if not export.location or export.location.startswith("s3://"):
        raise TrainingInputError(
            f"export {export.id} is not in a local folder ({export.location or 'no location'}): "
            "the trainer reads folders; copy the snapshot under TRAINING_EXPORT_ROOTS"
        )
    return export_dir_check(export.location)


def training_run_start(*, request: RunRequest, created_by: User | None) -> TrainingRun:
    """Check the request, store the run and enqueue it (after the commit) on queue gpu."""
    export_dir = _check_request(request)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            export_dir=str(export_dir),
            export=request.export,
            stage=request.stage,
            preset=request.preset,
            init_checkpoint=request.init_checkpoint,
            steps=request.steps,
            batch_size=request.batch_size,
            seq_len=request.seq_len,
            total_steps=request.steps,
            created_by=created_by,
        )
        transaction.on_commit(lambda: queueing.enqueue_training(run.id))
    return run


def training_command(run: TrainingRun, run_dir: Path) -> list[str]:
    """The trainer's command line for `run`.

    The recipe's warmups (up to 2,000 steps) are scaled so that none takes more than a
    tenth of a shorter run; the trainer refuses warmups that never finish.
    """
    warmup_scale = min(1.0, 0.1 * run.steps / LONGEST_RECIPE_WARMUP)
    command = [
        settings.TRAINING_PYTHON, "-m", "model_service.train",
        "--stage", run.stage, "--preset", run.preset,
        "--data", run.export_dir, "--out", str(run_dir),
        "--steps", str(run.steps), "--batch-size", str(run.batch_size),
        "--seq-len", str(run.seq_len), "--warmup-scale", f"{warmup_scale:.6g}",
    ]  # fmt: skip
    if run.init_checkpoint is not None:
        command += ["--init", run.init_checkpoint.path]
    return command + list(settings.TRAINING_EXTRA_ARGS)


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """The trainer's progress.json (written atomically), or None before its first write."""
    try:
        data = json.loads((run_dir / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _sync_progress(run_id: int, run_dir: Path) -> dict[str, Any] | None:
    progress = read_progress(run_dir)
    if progress is None:
        return None
    history = [[int(step), float(loss)] for step, loss in progress.get("loss_history") or []]
    TrainingRun.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
        step=int(progress.get("step") or 0),
        total_steps=int(progress.get("total_steps") or 0),
        loss=progress.get("loss"),
        loss_history=history,
    )
    return progress


def _log_tail(run_dir: Path) -> str:
    try:
        text = (run_dir / LOG_NAME).read_text(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS:].strip()


def training_run_execute(run_id: int) -> TrainingRun | None:
    """Claim a queued run, run the trainer to its end while copying its progress, then
    register the checkpoint (done) or store why it failed. Returns None when the run was
    not queued (another delivery of the message has it)."""
    run_dir = Path(settings.TRAINING_RUNS_DIR) / f"train-run-{run_id}"
    claimed = TrainingRun.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), run_dir=str(run_dir)
    )
    if claimed != 1:
        return None
    run = TrainingRun.objects.select_related("init_checkpoint").get(id=run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (run_dir / LOG_NAME).open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our trainer; arguments checked)
                training_command(run, run_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
            )
            try:
                while process.poll() is None:
                    try:
                        process.wait(timeout=settings.TRAINING_POLL_SECONDS)
                    except subprocess.TimeoutExpired:
                        _sync_progress(run_id, run_dir)
            finally:
                if process.poll() is None:  # the task was stopped: do not leave it behind
                    process.kill()
                    process.wait()
    except BaseException as exc:
        training_run_fail(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return _finish(run_id, run_dir, process.returncode)


def _finish(run_id: int, run_dir: Path, returncode: int) -> TrainingRun:
    progress = _sync_progress(run_id, run_dir) or {}
    checkpoint_dir = progress.get("checkpoint")
    if returncode != 0 or progress.get("state") != "done" or not checkpoint_dir:
        reason = progress.get("error") or _log_tail(run_dir) or "the trainer wrote no progress"
        training_run_fail(run_id, f"trainer exit status {returncode}: {reason}")
        return TrainingRun.objects.get(id=run_id)
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(id=run_id)
        checkpoint_register(
            path=Path(checkpoint_dir),
            name=run_dir.name,
            preset=run.preset,
            steps=int(progress.get("step") or run.steps),
            final_loss=progress.get("loss"),
            run=run,
        )
        TrainingRun.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.DONE, finished_at=timezone.now()
        )
    return TrainingRun.objects.get(id=run_id)


def training_run_fail(run_id: int, reason: str) -> None:
    """Mark a queued or running run failed with `reason` (shown in the admin)."""
    TrainingRun.objects.filter(id=run_id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).update(
        status=RunStatus.FAILED, failure_reason=reason[:10_000], finished_at=timezone.now()
    )


def checkpoint_register(
    *,
    path: Path,
    name: str,
    preset: str,
    steps: int,
    final_loss: float | None = None,
    run: TrainingRun | None = None,
) -> TrainedCheckpoint:
    """Record a checkpoint folder the model service can load (config.json + weights)."""
    path = path.resolve()
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise TrainingInputError(f"{path} is not a checkpoint (config.json, model.safetensors)")
    checkpoint, _ = TrainedCheckpoint.objects.update_or_create(
        path=str(path),
        defaults={
            "name": name,
            "preset": preset,
            "steps": steps,
            "final_loss": final_loss,
            "run": run,
        },
    )
    return checkpoint


def captioner_choose(
    *, checkpoint: TrainedCheckpoint | None, chosen_by: User | None
) -> CaptionerChoice:
    """Make `checkpoint` the AMA captioner's; None goes back to the newest checkpoint."""
    choice, _ = CaptionerChoice.objects.update_or_create(
        id=1, defaults={"checkpoint": checkpoint, "chosen_by": chosen_by}
    )
    return choice
