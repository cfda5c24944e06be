"""Train Molmo: caption pre-training or SFT (PIXMO_SPEC.md §5).

    python -m model_service.train --stage caption --preset debug --data EXPORT --out RUN \\
        --epochs 1 --batch-size 8 --warmup-scale 0.01
    torchrun --nproc_per_node 8 -m model_service.train --stage sft --init RUN/checkpoint ...

One process per device. With WORLD_SIZE > 1 the model is sharded with FSDP2
(`fully_shard` on every transformer block, then the root), each rank reads its share of
every global batch, and rank 0 alone logs and writes checkpoints. The recipe pieces
(parameter groups, schedule, clipping, losses) are in `optim`, the data order in
`order`, the run-dir files in `runfiles`, the typed config in `config`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from model_service import checkpoint, data
from model_service.config import MolmoConfig
from model_service.model import MolmoModel
from model_service.train.cli import parse_args
from model_service.train.config import TrainConfig
from model_service.train.optim import (
    IGNORE_INDEX,
    avg_loss_tokens_per_device,
    build_optimizer,
    clip_per_component,
    loss_sums,
    set_lrs,
)
from model_service.train.order import MicroBatches, build_order, total_steps
from model_service.train.runfiles import (
    CHECKPOINT_DIR,
    CURVE,
    METRICS,
    PROGRESS,
    MetricsLog,
    ProgressCallback,
    ProgressReport,
    load_train_state,
    plot_curve,
    save_train_state,
    write_atomically,
)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(cfg: TrainConfig) -> DistInfo:
    """Read torchrun's environment; start the process group when there are several ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = cfg.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local_rank}" if wanted == "cuda" else wanted)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, device=device)


@dataclass
class Assets:
    """What a run trains and feeds: model, its config, tokenizer and preprocessor."""

    model: MolmoModel
    config: MolmoConfig
    tokenizer: Any
    preprocessor: Any


def load_assets(cfg: TrainConfig, model_config: MolmoConfig | None = None) -> Assets:
    """The model to train: the resumed checkpoint, the --init checkpoint, or a fresh preset.

    `model_config` replaces the preset (benchmarks use it to shrink preprocessing).
    Residual dropout is a training choice, so the stage's value is written into the
    model config whichever way the model was obtained.
    """
    source = Path(cfg.out) / CHECKPOINT_DIR if cfg.resume else cfg.init
    if source is not None:
        loaded = checkpoint.load(source)
        assets = Assets(loaded.model, loaded.config, loaded.tokenizer, loaded.preprocessor)
    else:
        from model_service.preprocess import ImagePreprocessor
        from model_service.presets import get_preset
        from model_service.tokenizer import load_tokenizer

        mcfg = model_config if model_config is not None else get_preset(cfg.preset)
        tokenizer = load_tokenizer(mcfg.tokenizer)
        preprocessor = ImagePreprocessor(mcfg.preprocess, tokenizer)
        # Same seed on every rank: FSDP shards identical initial weights.
        model = MolmoModel.from_preset(mcfg, seed=cfg.seed)
        assets = Assets(model, mcfg, tokenizer, preprocessor)
    # The model reads its dropout from its config at every forward.
    assets.config.llm.residual_dropout = cfg.dropout()
    model_cfg = getattr(assets.model, "cfg", None)
    if model_cfg is not None:
        model_cfg.llm.residual_dropout = cfg.dropout()
    return assets


def shard_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """Move to the device; with several ranks, FSDP2-shard the blocks, then the root.

    FSDP2 gathers a unit's weights in that unit's forward hook, so a unit must be a
    module whose forward is actually called. MolmoModel runs the transformers decoder
    layers piecewise (to place residual dropout), so for those the units are each
    layer's attention and MLP; ViT blocks are called whole. Norms and embeddings stay
    with the root unit.
    """
    model.to(info.device)
    if info.world == 1:
        return model
    from torch.distributed.fsdp import fully_shard

    for module in list(model.modules()):
        if not isinstance(module, nn.ModuleList):
            continue
        for block in module:
            parts = [getattr(block, n, None) for n in ("self_attn", "mlp")]
            units = [p for p in parts if p is not None] or [block]
            for unit in units:
                fully_shard(unit)
    fully_shard(model)
    return model


def response_mask(labels: torch.Tensor) -> torch.Tensor:
    """Input positions that hold response (caption) tokens: those some label predicted."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, 1:] = labels[:, :-1] != IGNORE_INDEX
    return mask


@dataclass
class StepStats:
    """Global (all-rank) figures of one optimizer step."""

    ce_sum: float = 0.0
    z_sum: float = 0.0
    loss_tokens: float = 0.0
    tokens: float = 0.0
    grad_norms: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Owns the model, optimizer and step counter of one run on one rank."""

    def __init__(self, cfg: TrainConfig, assets: Assets, info: DistInfo, n_steps: int) -> None:
        self.cfg = cfg
        self.assets = assets
        self.info = info
        self.n_steps = n_steps
        self.model = shard_model(assets.model, info)
        self.optimizer = build_optimizer(self.model, cfg)
        self.step = 0  # optimizer steps done
        self.autocast = info.device.type == "cuda"  # bf16 on GPUs, plain fp32 on CPU

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [T, n_logits] of the batch's loss positions (labels != -100), in order."""
        inputs = {k: v.to(self.info.device) for k, v in batch.items() if k != "labels"}
        labels = batch["labels"].to(self.info.device)
        if self.cfg.stage_defaults().dropout_on_response_only:
            inputs["response_mask"] = response_mask(labels)
        inputs["logits_at"] = labels != IGNORE_INDEX
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.autocast
            else contextlib.nullcontext()
        )
        with ctx:
            logits: torch.Tensor = self.model(**inputs)
        return logits

    def train_step(self, micro_batches: Sequence[dict[str, torch.Tensor]]) -> StepStats:
        """One optimizer update over this rank's micro-batches of the global batch."""
        # Dropout draws depend only on (seed, step, rank), so a resumed run replays them.
        torch.manual_seed(hash((self.cfg.seed, self.step, self.info.rank)) % 2**62)
        local_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in micro_batches)
        divisor = avg_loss_tokens_per_device(local_tokens, self.info.device)
        self.model.train()
        totals = torch.zeros(4, dtype=torch.float64)
        for i, batch in enumerate(micro_batches):
            self._set_grad_sync(i == len(micro_batches) - 1)
            logits = self._forward(batch)  # [T, V]: the loss positions only
            labels = batch["labels"].to(logits.device)
            sums = loss_sums(logits, labels[labels != IGNORE_INDEX], self.cfg.z_loss)
            ((sums.ce + sums.z) / divisor).backward()
            real = float((batch["segment_ids"] >= 0).sum())
            totals += torch.tensor([sums.ce.item(), sums.z.item(), sums.tokens, real])
        norms = clip_per_component(self.optimizer, self.cfg.clip_norm)
        self.step += 1
        set_lrs(self.optimizer, self.step, self.n_steps, self.cfg.final_lr_ratio)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.info.world > 1:
            totals = totals.to(self.info.device)
            dist.all_reduce(totals)
        ce, z, n_loss, n_real = totals.tolist()
        return StepStats(ce, z, n_loss, n_real, norms)

    def _set_grad_sync(self, sync: bool) -> None:
        # Reduce-scatter gradients once per step, not once per micro-batch.
        setter = getattr(self.model, "set_requires_gradient_sync", None)
        if setter is not None:
            setter(sync)

    def state_dicts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Full (unsharded) model and optimizer state dicts, on CPU; empty off rank 0 under
        FSDP. Optimizer states are keyed by parameter name, so any world size can resume."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(self.model, self.optimizer, options=options)

    def load_optimizer(self, optim_state: dict[str, Any]) -> None:
        """Restore a state written by `state_dicts` (call on every rank)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self.model, self.optimizer, optim_state, options=options)

    def save(self, run_dir: Path, examples_seen: int) -> None:
        """Write RUN_DIR/checkpoint atomically (model, config, optimizer and step)."""
        model_state, optim_state = self.state_dicts()
        if not self.info.is_main:
            return
        model = self.assets.model
        if self.info.world > 1:
            # checkpoint.save takes a module: rebuild an unsharded copy on the CPU.
            model = MolmoModel(self.assets.config)
            model.load_state_dict(model_state)
        state = {"step": self.step, "examples_seen": examples_seen, "optimizer": optim_state}

        def write(tmp: Path) -> None:
            checkpoint.save(tmp, model, self.assets.config)
            save_train_state(tmp, state)

        write_atomically(run_dir / CHECKPOINT_DIR, write)


def build_dataset(cfg: TrainConfig, assets: Assets) -> Any:
    """The stage's dataset from `model_service.data` over the --data export dirs."""
    return data.make_dataset(
        cfg.stage,
        cfg.data,
        assets.tokenizer,
        assets.preprocessor,
        cfg.seq_len,
        seed=cfg.seed,
        rates=cfg.mixture or None,
    )


def micro_batch_stream(
    cfg: TrainConfig, dataset: Any, info: DistInfo, first_step: int, n_steps: int, pad_id: int
) -> Iterator[list[dict[str, torch.Tensor]]]:
    """This rank's micro-batches, grouped per optimizer step, from `first_step` on."""
    order = build_order(len(dataset), cfg, n_steps)
    micro = MicroBatches(dataset, order, cfg, first_step, n_steps, info.rank, info.world)
    loader = torch.utils.data.DataLoader(
        micro,
        batch_size=None,  # items are whole micro-batches already
        num_workers=cfg.num_workers,
        collate_fn=functools.partial(data.collate, pad_id=pad_id),
        pin_memory=info.device.type == "cuda",
    )
    group: list[dict[str, torch.Tensor]] = []
    for batch in loader:
        group.append(batch)
        if len(group) == cfg.grad_accum:
            yield group
            group = []


def prepare_run(cfg: TrainConfig, info: DistInfo) -> TrainConfig:
    """Validate; on --resume, check the saved config matches and take its values."""
    cfg.validate(info.world)
    run_dir = Path(cfg.out)
    saved_path = run_dir / "train_config.json"
    if cfg.resume:
        if not (run_dir / CHECKPOINT_DIR).exists():
            raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / CHECKPOINT_DIR}")
        saved = TrainConfig.load(saved_path)
        changed = cfg.differences(saved)
        if changed:
            raise ValueError(f"--resume: fields differ from {saved_path}: {changed}")
    elif info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved_path.write_text(cfg.to_json())
    return cfg


def run(
    cfg: TrainConfig,
    model_config: MolmoConfig | None = None,
    dataset: Any = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train as `cfg` says; return a summary (steps, final loss, tokens/s, run dir).

    `model_config` replaces the preset and `dataset` (anything with `__len__`,
    `__getitem__` returning `data.pack` items, and `set_epoch`) replaces the --data
    exports: benchmarks use both for in-memory synthetic tasks. `progress` is called
    (on rank 0) with the dict that RUN_DIR/progress.json holds after every step, each
    checkpoint, and at the end or on failure (runfiles.ProgressReport).
    """
    info = setup_distributed(cfg)
    prepare_run(cfg, info)
    report: ProgressReport | None = None
    try:
        assets = load_assets(cfg, model_config)
        if dataset is None:
            dataset = build_dataset(cfg, assets)
        n_steps = total_steps(cfg, len(dataset))
        cfg.check_total_steps(n_steps)
        trainer = Trainer(cfg, assets, info, n_steps)
        run_dir = Path(cfg.out)
        if cfg.resume:
            state = load_train_state(run_dir / CHECKPOINT_DIR)
            trainer.load_optimizer(state["optimizer"])
            trainer.step = int(state["step"])
        log = MetricsLog(run_dir / METRICS, trainer.step) if info.is_main else None
        if info.is_main:
            report = ProgressReport(run_dir / PROGRESS, n_steps, progress)
            report.update(step=trainer.step)
        summary = _loop(cfg, trainer, dataset, log, n_steps, report)
    except BaseException as exc:
        if report is not None:
            report.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if info.is_main:
        plot_curve(run_dir / METRICS, run_dir / CURVE)
    if report is not None:
        report.update(state="done")
    return summary


def _loop(
    cfg: TrainConfig,
    trainer: Trainer,
    dataset: Any,
    log: MetricsLog | None,
    n_steps: int,
    report: ProgressReport | None,
) -> dict[str, Any]:
    """The step loop: train, log, checkpoint; returns the run summary."""
    info, run_dir = trainer.info, Path(cfg.out)
    last = min(n_steps, cfg.stop_at) if cfg.stop_at is not None else n_steps
    pad_id = int(trainer.assets.tokenizer.pad_id)
    stream = micro_batch_stream(cfg, dataset, info, trainer.step, n_steps, pad_id)
    bar = tqdm(total=last, initial=trainer.step, disable=not info.is_main, desc=cfg.stage)
    tokens, seconds, loss = 0.0, 0.0, float("nan")
    began = time.perf_counter()
    while trainer.step < last:
        if _out_of_time(cfg, info, began):
            break
        start = time.perf_counter()
        stats = trainer.train_step(next(stream))
        elapsed = time.perf_counter() - start
        tokens, seconds = tokens + stats.tokens, seconds + elapsed
        loss = (stats.ce_sum + stats.z_sum) / max(stats.loss_tokens, 1.0)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{stats.tokens / elapsed:.0f}")
        if log is not None and (trainer.step % cfg.log_every == 0 or trainer.step == last):
            log.write(_record(trainer, stats, elapsed))
        if report is not None:
            report.update(step=trainer.step, loss=loss)
        if cfg.save_every and trainer.step % cfg.save_every == 0 and trainer.step < last:
            _save(trainer, run_dir, cfg, report)
            if info.is_main:
                plot_curve(run_dir / METRICS, run_dir / CURVE)
    bar.close()
    _save(trainer, run_dir, cfg, report)
    return {
        "steps": trainer.step,
        "total_steps": n_steps,
        "final_loss": loss,
        "tokens_per_s": tokens / seconds if seconds else 0.0,
        "run_dir": str(run_dir),
    }


def _save(trainer: Trainer, run_dir: Path, cfg: TrainConfig, report: ProgressReport | None) -> None:
    trainer.save(run_dir, trainer.step * cfg.batch_size)
    if report is not None:
        report.update(checkpoint=str(run_dir / CHECKPOINT_DIR))


def _out_of_time(cfg: TrainConfig, info: DistInfo, began: float) -> bool:
    """Whether the time limit is spent; rank 0's clock decides for every rank, so no
    rank waits in a collective that the others skipped."""
    if cfg.time_limit is None:
        return False
    flag = torch.tensor([float(time.perf_counter() - began > cfg.time_limit)])
    if info.world > 1:
        flag = flag.to(info.device)
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _record(trainer: Trainer, stats: StepStats, elapsed: float) -> dict[str, Any]:
    """One metrics.jsonl row: per-token losses, LRs and pre-clip norms per component."""
    n = max(stats.loss_tokens, 1.0)
    record: dict[str, Any] = {
        "step": trainer.step,
        "loss": (stats.ce_sum + stats.z_sum) / n,
        "ce": stats.ce_sum / n,
        "z_loss": stats.z_sum / n,
        "loss_tokens": stats.loss_tokens,
        "tokens": stats.tokens,
        "tokens_per_s": stats.tokens / elapsed,
        "seconds": elapsed,
    }
    for group in trainer.optimizer.param_groups:
        record[f"lr_{group['name']}"] = group["lr"]
    for name, norm in stats.grad_norms.items():
        record[f"grad_norm_{name}"] = norm
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (`python -m model_service.train`)."""
    cfg = parse_args(argv)
    summary = run(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"done: {summary['steps']}/{summary['total_steps']} steps, "
            f"final loss {summary['final_loss']:.4f}, "
            f"{summary['tokens_per_s']:.0f} tokens/s, run dir {summary['run_dir']}"
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
