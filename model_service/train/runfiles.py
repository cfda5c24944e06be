"""What a training run writes besides the weights: metrics.jsonl, the curve PNG and the
optimizer/scheduler/step state that makes `--resume` continue exactly.

Run dir layout (all written by rank 0 only):

    RUN_DIR/train_config.json      the TrainConfig of the run
    RUN_DIR/metrics.jsonl          one JSON object per logged optimizer step
    RUN_DIR/train_curve.png        loss and LR against step, redrawn at every checkpoint
    RUN_DIR/progress.json          state, step of total, last loss: rewritten atomically
                                   after every step, for whoever watches the run
    RUN_DIR/checkpoint/            latest checkpoint (model_service.checkpoint format)
        config.json, model.safetensors    written by checkpoint.save
        train_state.pt                    optimizer state, step, examples seen
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TRAIN_STATE = "train_state.pt"
CHECKPOINT_DIR = "checkpoint"
METRICS = "metrics.jsonl"
CURVE = "train_curve.png"
PROGRESS = "progress.json"

ProgressCallback = Callable[[dict[str, Any]], None]


class ProgressReport:
    """The run's progress for a watcher (a platform task, an admin page): a small JSON
    object in RUN_DIR/progress.json, replaced atomically so a reader never sees half of
    it, and handed to `callback` too when one is given.

    Fields: state ("running", "done" or "failed"), step, total_steps, loss (last step),
    loss_history ([step, loss] pairs, at most `MAX_HISTORY`, thinned evenly), checkpoint
    (the latest one written, or null), error (when failed), updated (unix time).
    """

    MAX_HISTORY = 500

    def __init__(
        self, path: Path, total_steps: int, callback: ProgressCallback | None = None
    ) -> None:
        self.path = path
        self.callback = callback
        self.data: dict[str, Any] = {
            "state": "running",
            "step": 0,
            "total_steps": total_steps,
            "loss": None,
            "loss_history": [],
            "checkpoint": None,
            "error": None,
        }

    def update(self, **fields: Any) -> None:
        """Merge `fields`, append the loss to the history, write and notify."""
        self.data.update(fields)
        if fields.get("loss") is not None:
            history = self.data["loss_history"]
            history.append([self.data["step"], float(fields["loss"])])
            if len(history) > self.MAX_HISTORY:
                del history[1::2]  # keep every other point, the first and the latest
        self.data["updated"] = time.time()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)
        if self.callback is not None:
            self.callback(dict(self.data))


class MetricsLog:
    """Append-only JSON-lines log; on resume, records past the resumed step are dropped
    so the file never shows a step twice."""

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        if resume_step == 0 or not path.exists():
            path.write_text("")
            return
        kept = [row for row in read_metrics(path) if row.get("step", 0) <= resume_step]
        path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush, so a crashed run keeps its history."""
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(metrics_path: Path, png_path: Path) -> None:
    """Draw loss (and the LLM learning rate on a second axis) against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_path) if "loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], label="loss (ce + z)", color="tab:blue")
    ax.plot(steps, [r["ce"] for r in rows], label="cross-entropy", color="tab:cyan", lw=0.8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per token")
    ax.legend(loc="upper right")
    lr_axis = ax.twinx()
    lr_axis.plot(steps, [r.get("lr_llm", math.nan) for r in rows], color="tab:orange", lw=0.8)
    lr_axis.set_ylabel("LLM learning rate", color="tab:orange")
    ax.set_title(png_path.parent.name)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Let `write` fill a fresh sibling dir, then swap it in, so a crash mid-save never
    leaves a half-written checkpoint where `--resume` would find it."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def save_train_state(directory: Path, state: dict[str, Any]) -> None:
    """Optimizer state dict, step and data position, beside the model weights."""
    torch.save(state, directory / TRAIN_STATE)


def load_train_state(directory: Path) -> dict[str, Any]:
    """Inverse of `save_train_state`; refuses a checkpoint without training state."""
    path = directory / TRAIN_STATE
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: this checkpoint cannot be resumed")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state
