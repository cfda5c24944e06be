"""Typed training configuration for the two Molmo stages (PIXMO_SPEC.md §5).

Every field carries a comment saying what it controls; `TrainConfig.validate` refuses
combinations that would silently train something else than asked. Stage defaults live in
`STAGE_DEFAULTS` as data, so the caption and SFT recipes can be read side by side.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Stage = Literal["caption", "sft"]
COMPONENTS: tuple[str, ...] = ("vit", "connector", "llm")
# Fields that only steer one process, not what is trained: a resumed run may change them.
RUN_CONTROL = frozenset(
    {
        "out",
        "resume",
        "stop_at",
        "time_limit",
        "device",
        "num_workers",
        "log_every",
        "save_every",
        "init",
    }
)


@dataclass(frozen=True)
class ComponentOptim:
    """Peak learning rate and warmup length of one parameter group."""

    lr: float  # peak learning rate reached at the end of warmup
    warmup: int  # optimizer steps of linear warmup before the cosine decay


@dataclass(frozen=True)
class StageDefaults:
    """The published recipe of one stage; CLI flags override single values."""

    vit: ComponentOptim
    connector: ComponentOptim
    llm: ComponentOptim
    residual_dropout: float  # dropout on the residual stream at response tokens
    dropout_on_response_only: bool  # caption stage: dropout only on caption tokens


STAGE_DEFAULTS: dict[str, StageDefaults] = {
    # Caption pre-training: the connector is new, so it learns 10x faster than the LLM;
    # the ViT is already good at images and moves least.
    "caption": StageDefaults(
        vit=ComponentOptim(lr=6e-6, warmup=2000),
        connector=ComponentOptim(lr=2e-4, warmup=200),
        llm=ComponentOptim(lr=2e-5, warmup=2000),
        residual_dropout=0.1,
        dropout_on_response_only=True,
    ),
    # SFT starts from the caption checkpoint: every component is aligned already.
    "sft": StageDefaults(
        vit=ComponentOptim(lr=5e-6, warmup=200),
        connector=ComponentOptim(lr=5e-6, warmup=200),
        llm=ComponentOptim(lr=1e-5, warmup=200),
        residual_dropout=0.1,
        dropout_on_response_only=False,
    ),
}


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as `train_config.json` in the run dir."""

    stage: Stage  # "caption" (pre-training) or "sft" (fine-tuning on a mixture)
    preset: str  # model preset name from model_service.presets (ignored with --init)
    data: list[str]  # export dirs (manifest.json + shards), one per dataset
    out: str  # run dir: checkpoints, metrics.jsonl, train_curve.png, train_config.json
    steps: int | None = None  # optimizer steps; exactly one of steps/epochs is set
    epochs: float | None = None  # passes over the data (sft: one epoch = as many draws as images)
    batch_size: int = 8  # GLOBAL batch in examples (all devices x accumulation steps)
    grad_accum: int = 1  # micro-batches accumulated per optimizer step on each device
    seq_len: int = 2304  # packed sequence length in tokens, image tokens included
    seed: int = 0  # seeds weights init, data order, dropout (per step, so resume is exact)
    init: str | None = None  # checkpoint dir to start from (SFT: the caption checkpoint)
    resume: bool = False  # continue from `<out>/checkpoint` with optimizer and data state
    stop_at: int | None = None  # end this process after this step; the schedule still spans
    # all steps (preemptible jobs, tests of --resume)
    time_limit: float | None = None  # seconds of training after which this process stops
    # and checkpoints, like stop_at (fixed-budget benchmarks)
    # sft sampling rates by dataset name (e.g. "pixmo-points") or group ("human",
    # "synthetic", "academic"); empty = sqrt(size). See data.mixture_weights.
    mixture: dict[str, float] = field(default_factory=dict)
    lr: dict[str, float] = field(default_factory=dict)  # component -> peak LR (stage default)
    warmup: dict[str, int] = field(default_factory=dict)  # component -> warmup steps
    warmup_scale: float = 1.0  # multiplies every warmup: lets small runs keep the shape
    final_lr_ratio: float = 0.1  # cosine ends at this fraction of each peak LR
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moments
    eps: float = 1e-6  # AdamW epsilon
    weight_decay: float = 0.0  # the recipe uses none
    clip_norm: float = 1.0  # gradient-norm clip, applied to each component separately
    z_loss: float = 1e-4  # weight of logsumexp(logits)^2 on loss tokens
    residual_dropout: float | None = None  # None = stage default
    device: str = "auto"  # "auto" = cuda when available, else cpu
    num_workers: int = 0  # DataLoader worker processes per rank
    log_every: int = 1  # optimizer steps between metrics.jsonl records
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end

    def stage_defaults(self) -> StageDefaults:
        """The published recipe for this config's stage."""
        return STAGE_DEFAULTS[self.stage]

    def component(self, name: str) -> ComponentOptim:
        """Peak LR and (scaled) warmup of one component after CLI overrides."""
        base: ComponentOptim = getattr(self.stage_defaults(), name)
        lr = self.lr.get(name, base.lr)
        warmup = self.warmup.get(name, base.warmup)
        # A scaled warmup never rounds down to zero unless zero was asked for.
        scaled = max(1, round(warmup * self.warmup_scale)) if warmup > 0 else 0
        return ComponentOptim(lr=lr, warmup=scaled)

    def dropout(self) -> float:
        """Residual dropout probability after the override."""
        if self.residual_dropout is None:
            return self.stage_defaults().residual_dropout
        return self.residual_dropout

    def validate(self, world_size: int = 1) -> None:
        """Refuse values and combinations that cannot mean what the user wants."""
        errors: list[str] = []
        if self.stage not in STAGE_DEFAULTS:
            errors.append(f"stage: {self.stage!r} is not one of {sorted(STAGE_DEFAULTS)}")
        if (self.steps is None) == (self.epochs is None):
            errors.append("steps/epochs: give exactly one of them")
        if self.steps is not None and self.steps < 1:
            errors.append(f"steps: must be >= 1, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            errors.append(f"epochs: must be > 0, got {self.epochs}")
        if self.stage == "caption" and self.mixture:
            errors.append("mixture: the caption stage has no mixture (rates are for sft)")
        if not self.data:
            errors.append("data: give at least one export dir")
        if self.stop_at is not None and self.stop_at < 1:
            errors.append(f"stop_at: must be >= 1, got {self.stop_at}")
        if self.time_limit is not None and self.time_limit <= 0:
            errors.append(f"time_limit: must be > 0 seconds, got {self.time_limit}")
        if self.grad_accum < 1:
            errors.append(f"grad_accum: must be >= 1, got {self.grad_accum}")
        per_step = world_size * self.grad_accum
        if self.batch_size < 1 or self.batch_size % per_step:
            errors.append(
                f"batch_size: {self.batch_size} is not a positive multiple of "
                f"world_size x grad_accum = {per_step}"
            )
        if self.seq_len < 16:
            errors.append(f"seq_len: {self.seq_len} is too short to hold an image")
        if self.stage == "sft" and self.init is None and not self.resume:
            errors.append("init: stage sft starts from the caption checkpoint (--init DIR)")
        errors += self._check_optim()
        if errors:
            raise ValueError("invalid training config:\n  " + "\n  ".join(errors))

    def _check_optim(self) -> list[str]:
        errors = []
        for name in [*self.lr, *self.warmup]:
            if name not in COMPONENTS:
                errors.append(f"lr/warmup: unknown component {name!r}; use {COMPONENTS}")
        for name, steps in self.warmup.items():
            if steps < 0:
                errors.append(f"warmup.{name}: must be >= 0, got {steps}")
        for name, lr in self.lr.items():
            if lr < 0:
                errors.append(f"lr.{name}: must be >= 0, got {lr}")
        if self.warmup_scale <= 0:
            errors.append(f"warmup_scale: must be > 0, got {self.warmup_scale}")
        if not 0 <= self.final_lr_ratio <= 1:
            errors.append(f"final_lr_ratio: must be in [0, 1], got {self.final_lr_ratio}")
        if not all(0 <= b < 1 for b in self.betas):
            errors.append(f"betas: must be in [0, 1), got {self.betas}")
        if self.clip_norm <= 0:
            errors.append(f"clip_norm: must be > 0, got {self.clip_norm}")
        if self.z_loss < 0:
            errors.append(f"z_loss: must be >= 0, got {self.z_loss}")
        if not 0 <= self.dropout() < 1:
            errors.append(f"residual_dropout: must be in [0, 1), got {self.dropout()}")
        for name, rate in self.mixture.items():
            if rate < 0:
                errors.append(f"mixture.{name}: rate must be >= 0, got {rate}")
        if self.mixture and sum(self.mixture.values()) <= 0:
            errors.append("mixture: rates sum to zero")
        return errors

    def check_total_steps(self, total_steps: int) -> None:
        """Refuse warmups that never finish: the run would never see its peak LR."""
        for name in COMPONENTS:
            warmup = self.component(name).warmup
            if warmup > total_steps:
                raise ValueError(
                    f"warmup.{name}: {warmup} steps > {total_steps} total steps; "
                    "pass --warmup-scale (e.g. 0.01) or --warmup-{name} for a short run"
                )

    def differences(self, other: TrainConfig) -> list[str]:
        """Fields that differ from `other`, ignoring those a resumed run may change."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return sorted(k for k in mine if k not in RUN_CONTROL and mine[k] != theirs[k])

    def to_json(self) -> str:
        """Stable JSON (sorted keys) for train_config.json."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_json`; refuses unknown keys so typos fail loudly."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        values = dict(raw)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a train_config.json written by `to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
