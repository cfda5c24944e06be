"""Command line of `python -m model_service.train`, turned into a validated TrainConfig."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from model_service.train.config import COMPONENTS, STAGE_DEFAULTS, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; every flag maps onto one TrainConfig field."""
    p = argparse.ArgumentParser(
        prog="python -m model_service.train",
        description="Train Molmo: caption pre-training or SFT on a mixture (PIXMO_SPEC §5).",
    )
    p.add_argument("--stage", required=True, choices=sorted(STAGE_DEFAULTS))
    p.add_argument("--preset", default="debug", help="model preset (ignored with --init)")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="EXPORT_DIR",
        help="export dir with manifest.json; repeat for a mixture",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="optimizer steps")
    length.add_argument("--epochs", type=float, help="passes over the data")
    p.add_argument("--batch-size", type=int, default=8, help="GLOBAL batch in examples")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step per device")
    p.add_argument("--seq-len", type=int, default=2304)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint dir")
    p.add_argument("--stop-at", type=int, help="stop after this step (schedule unchanged)")
    p.add_argument("--time-limit", type=float, help="stop after this many seconds of training")
    p.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help="sft sampling rate of a dataset or group (human/synthetic/academic)",
    )
    p.add_argument("--mix-file", type=Path, help='JSON {"name": rate, ...}; --mix wins')
    for name in COMPONENTS:
        p.add_argument(f"--lr-{name}", type=float, help=f"peak LR of the {name} (stage default)")
        p.add_argument(f"--warmup-{name}", type=int, help=f"warmup steps of the {name}")
    p.add_argument(
        "--warmup-scale",
        type=float,
        default=1.0,
        help="multiply every warmup (e.g. 0.01 for a short run)",
    )
    p.add_argument("--final-lr-ratio", type=float, default=0.1)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--z-loss", type=float, default=1e-4)
    p.add_argument("--residual-dropout", type=float, help="stage default 0.1")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--log-every", type=int, default=1)
    p.add_argument("--save-every", type=int, default=0)
    return p


def _mixture(args: argparse.Namespace) -> dict[str, float]:
    rates: dict[str, float] = {}
    if args.mix_file is not None:
        loaded = json.loads(args.mix_file.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"--mix-file {args.mix_file}: expected a JSON object")
        rates.update({str(k): float(v) for k, v in loaded.items()})
    for item in args.mix:
        name, sep, rate = item.partition("=")
        if not sep:
            raise ValueError(f"--mix {item!r}: expected NAME=RATE")
        rates[name.strip()] = float(rate)
    return rates


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse the command line into a TrainConfig (validated again once the world is known)."""
    args = build_parser().parse_args(argv)
    lrs = {c: getattr(args, f"lr_{c}") for c in COMPONENTS}
    warmups = {c: getattr(args, f"warmup_{c}") for c in COMPONENTS}
    cfg = TrainConfig(
        stage=args.stage,
        preset=args.preset,
        data=list(args.data),
        out=args.out,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        seq_len=args.seq_len,
        seed=args.seed,
        init=args.init,
        resume=args.resume,
        stop_at=args.stop_at,
        time_limit=args.time_limit,
        mixture=_mixture(args),
        lr={c: v for c, v in lrs.items() if v is not None},
        warmup={c: v for c, v in warmups.items() if v is not None},
        warmup_scale=args.warmup_scale,
        final_lr_ratio=args.final_lr_ratio,
        clip_norm=args.clip_norm,
        z_loss=args.z_loss,
        residual_dropout=args.residual_dropout,
        device=args.device,
        num_workers=args.num_workers,
        log_every=args.log_every,
        save_every=args.save_every,
    )
    cfg.validate()
    return cfg
