"""Evaluation: pure metric functions (PIXMO_SPEC.md §6) and a CLI that runs a checkpoint.

Metrics
- pointing: predicted and true points are matched one-to-one by the Hungarian algorithm
  (scipy `linear_sum_assignment`); a pair is a hit when the prediction lies inside the
  true instance's mask, or, without masks, within `threshold` of the true point.
  The assignment first maximises the number of hits, then minimises distance, so a
  near-miss pairing never steals a point that another prediction would hit.
  Precision = hits / predictions, recall = hits / true points, F1 averaged over examples.
  An empty ground truth scores 1 only when nothing is predicted (else 0).
- counting: exact match of the final number (`molmo_text.parse_count`).
- clocks: exact H:MM on the 12-hour dial, and within N minutes (circular distance).

    python -m model_service.eval --checkpoint DIR --data EXPORT_DIR \
        --task points|count|clocks [--limit N] --out report.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from model_service import data
from pipelines import molmo_text

Point = tuple[float, float]


@dataclass(frozen=True)
class PointScore:
    """Pointing scores of one example."""

    precision: float
    recall: float
    f1: float
    hits: int


def _in_mask(point: Point, mask: np.ndarray) -> bool:
    """Is a percent point inside a boolean [H, W] mask of the image?"""
    height, width = mask.shape
    col = min(max(int(point[0] / 100.0 * width), 0), width - 1)
    row = min(max(int(point[1] / 100.0 * height), 0), height - 1)
    return bool(mask[row, col])


def point_hits(
    pred: Sequence[Point],
    true: Sequence[Point],
    masks: Sequence[np.ndarray] | None = None,
    threshold: float = 5.0,
) -> int:
    """Hits of the best one-to-one matching of `pred` to `true` (both in percent).

    `masks[j]` (bool [H, W] over the image) decides whether a prediction hits true
    instance j; without masks, a hit is a distance <= `threshold` percent units.
    """
    if not pred or not true:
        return 0
    p = np.asarray(pred, dtype=np.float64)  # [P, 2]
    t = np.asarray(true, dtype=np.float64)  # [T, 2]
    dist = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=-1)  # [P, T]
    if masks is not None:
        if len(masks) != len(true):
            raise ValueError(f"{len(masks)} masks for {len(true)} true points")
        valid = np.array([[_in_mask(pt, np.asarray(m, bool)) for m in masks] for pt in pred])
    else:
        valid = dist <= threshold
    # A miss costs more than any distance: hits are maximised first, distance second.
    penalty = float(dist.max()) * (len(pred) + len(true)) + 1.0
    rows, cols = linear_sum_assignment(dist + np.where(valid, 0.0, penalty))
    return int(valid[rows, cols].sum())


def pointing_score(
    pred: Sequence[Point],
    true: Sequence[Point],
    masks: Sequence[np.ndarray] | None = None,
    threshold: float = 5.0,
) -> PointScore:
    """Precision, recall and F1 of one example (see the module docstring)."""
    if not true:
        score = 1.0 if not pred else 0.0
        return PointScore(score, score, score, 0)
    hits = point_hits(pred, true, masks, threshold)
    precision = hits / len(pred) if pred else 0.0
    recall = hits / len(true)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return PointScore(precision, recall, f1, hits)


def pointing_metrics(
    preds: Sequence[Sequence[Point]],
    trues: Sequence[Sequence[Point]],
    masks: Sequence[Sequence[np.ndarray] | None] | None = None,
    threshold: float = 5.0,
) -> dict[str, float]:
    """Precision, recall and F1, each averaged over examples."""
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions for {len(trues)} examples")
    all_masks = masks if masks is not None else [None] * len(trues)
    scores = [
        pointing_score(p, t, m, threshold) for p, t, m in zip(preds, trues, all_masks, strict=True)
    ]
    n = max(len(scores), 1)
    return {
        "precision": sum(s.precision for s in scores) / n,
        "recall": sum(s.recall for s in scores) / n,
        "f1": sum(s.f1 for s in scores) / n,
    }


def count_metrics(preds: Sequence[str], trues: Sequence[int]) -> dict[str, float]:
    """Share of answers whose final number equals the true count."""
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions for {len(trues)} examples")
    hits = sum(molmo_text.parse_count(p) == t for p, t in zip(preds, trues, strict=True))
    return {"accuracy": hits / max(len(trues), 1)}


def clock_distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Minutes between two dial readings, going the short way round the 12 hours."""
    diff = abs((a[0] % 12 * 60 + a[1]) - (b[0] % 12 * 60 + b[1])) % 720
    return min(diff, 720 - diff)


def clock_metrics(
    preds: Sequence[str], trues: Sequence[tuple[int, int] | None], tolerance: int = 5
) -> dict[str, float]:
    """Exact H:MM accuracy and accuracy within `tolerance` minutes.

    A true value of None (hands hidden) is right when the answer states no time.
    """
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions for {len(trues)} examples")
    exact = close = 0
    for text, true in zip(preds, trues, strict=True):
        read = molmo_text.parse_clock_answer(text)
        if true is None or read is None:
            ok = true is None and read is None
            exact, close = exact + ok, close + ok
            continue
        distance = clock_distance(read, true)
        exact += distance == 0
        close += distance <= tolerance
    n = max(len(trues), 1)
    return {"exact": exact / n, f"within_{tolerance}_min": close / n}


# --------------------------------------------------------------------------- CLI


TASK_KINDS = {"points": ("points",), "count": ("points", "count"), "clocks": ("clocks",)}


@dataclass
class EvalExample:
    """One prompt to run and the truth to score it against."""

    image: Path
    question: str
    truth: Any
    masks: list[np.ndarray] | None = None


def _masks(row: dict[str, Any]) -> list[np.ndarray] | None:
    raw = row.get("masks")
    return [np.asarray(m, dtype=bool) for m in raw] if raw is not None else None


def eval_examples(export: str | Path, task: str, limit: int | None = None) -> list[EvalExample]:
    """Prompts and truths of `task` from an export, one per row, in export order."""
    manifest, rows = data.read_rows(export)
    kind = data.DATASET_KINDS[manifest.dataset]
    if kind not in TASK_KINDS[task]:
        raise ValueError(f"task {task!r} cannot be scored on {manifest.dataset}")
    resolver = data.ImageResolver(export)
    out: list[EvalExample] = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        if task == "count" and kind == "points" and row.get("collection_method") != "counting":
            continue
        path = resolver.resolve(row)
        if task == "clocks":
            hour, minute = int(row["hour_visible"]), int(row["minute_visible"])
            truth = None if hour < 0 or minute < 0 else (hour % 12 or 12, minute)
            out.append(EvalExample(path, molmo_text.CLOCK_QUESTION, truth))
        elif task == "points":
            points = [(float(p["x"]), float(p["y"])) for p in row["points"] or []]
            out.append(EvalExample(path, f"Point to {row['label']}.", points, _masks(row)))
        else:
            question = f"How many {row['label']} are there?"
            out.append(EvalExample(path, question, int(row["count"])))
    return out


def score(task: str, texts: Sequence[str], examples: Sequence[EvalExample]) -> dict[str, float]:
    """Metrics of `task` for generated `texts`."""
    truths = [e.truth for e in examples]
    if task == "points":
        preds = [molmo_text.parse_points(t) for t in texts]
        return pointing_metrics(preds, truths, [e.masks for e in examples])
    if task == "count":
        return count_metrics(texts, truths)
    return clock_metrics(texts, truths)


def generate_answers(
    loaded: Any, examples: Sequence[EvalExample], batch_size: int, max_new_tokens: int
) -> list[str]:
    """Greedy answers of a loaded checkpoint (`checkpoint.load`) to every example."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    device = next(model.parameters()).device
    texts: list[str] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        items = [
            data.build_prompt(
                tokenizer,
                loaded.preprocessor,
                data.load_image(e.image),
                molmo_text.chat_prompt(e.question),
            )
            for e in chunk
        ]
        batch = {k: v.to(device) for k, v in data.collate(items, tokenizer.pad_id).items()}
        with torch.no_grad():
            outputs = model.generate(batch, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id)
        texts.extend(tokenizer.decode(list(ids)).strip() for ids in outputs)
    return texts


def run_eval(
    checkpoint: str | Path,
    export: str | Path,
    task: str,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 192,
    loader: Callable[[str | Path], Any] | None = None,
) -> dict[str, Any]:
    """Load, generate, score; returns the report dict (task, n, metrics, examples)."""
    if loader is None:
        # Imported here: the metric functions must not pull in the model stack.
        from model_service.checkpoint import load

        loader = load
    examples = eval_examples(export, task, limit)
    if not examples:
        raise ValueError(f"{export}: no examples for task {task!r}")
    texts = generate_answers(loader(checkpoint), examples, batch_size, max_new_tokens)
    shown = [
        {"image": str(e.image), "question": e.question, "prediction": t, "truth": e.truth}
        for e, t in zip(examples[:5], texts, strict=False)
    ]
    return {
        "task": task,
        "n": len(examples),
        "metrics": score(task, texts, examples),
        "examples": shown,
    }


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: writes the report to --out and prints it."""
    parser = argparse.ArgumentParser(description="Evaluate a Molmo checkpoint on an export.")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="export dir")
    parser.add_argument("--task", required=True, choices=("points", "count", "clocks"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--out", required=True, help="report.json to write")
    args = parser.parse_args(argv)
    report = run_eval(
        args.checkpoint, args.data, args.task, args.limit, args.batch_size, args.max_new_tokens
    )
    text = json.dumps(report, indent=2, default=str)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
