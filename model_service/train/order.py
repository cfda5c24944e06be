"""The order in which a run sees its examples, as a pure function of (size, config).

The whole order is built up front as an array of (epoch, index) rows, one row per
example of the global batch of every step; `model_service.data` derives all per-item
randomness (transcript choice, mixture draw, ...) from (seed, index, epoch). Resuming at
step s therefore means slicing from row s * batch_size: no sampler state has to be
saved, and any world size reads the same global batches (rank r takes its contiguous
share of each one, like DistributedSampler with drop_last).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from model_service.train.config import TrainConfig


def total_steps(cfg: TrainConfig, n_examples: int) -> int:
    """Optimizer steps of the run; epochs drop the last partial global batch."""
    if cfg.steps is not None:
        return cfg.steps
    assert cfg.epochs is not None
    steps = math.floor(cfg.epochs * n_examples / cfg.batch_size)
    if steps < 1:
        raise ValueError(
            f"epochs: {cfg.epochs} epoch(s) of {n_examples} examples hold no full batch "
            f"of {cfg.batch_size}; lower --batch-size"
        )
    return steps


def build_order(n_examples: int, cfg: TrainConfig, steps: int) -> np.ndarray:
    """int64 [steps * batch_size, 2] rows of (epoch, example index), reshuffled per epoch."""
    if n_examples < 1:
        raise ValueError("data: the training set is empty")
    n_rows = steps * cfg.batch_size
    epochs = math.ceil(n_rows / n_examples)
    parts = []
    for epoch in range(epochs):
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n_examples)
        parts.append(np.stack([np.full(n_examples, epoch), perm], axis=1))
    return np.concatenate(parts)[:n_rows].astype(np.int64)


def micro_batch_rows(
    order: np.ndarray, step: int, micro: int, cfg: TrainConfig, rank: int, world: int
) -> np.ndarray:
    """Rows of `order` for micro-batch `micro` of 0-based `step` on `rank`."""
    per_rank = cfg.batch_size // world
    per_micro = per_rank // cfg.grad_accum
    start = step * cfg.batch_size + rank * per_rank + micro * per_micro
    return order[start : start + per_micro]


class MicroBatches(torch.utils.data.Dataset[list[Mapping[str, Any]]]):
    """Item k = the examples of this rank's k-th micro-batch from `first_step` on.

    Collation happens in the DataLoader's `collate_fn`, so workers return ready
    tensors; `set_epoch` is called per example because one micro-batch may straddle
    an epoch boundary.
    """

    def __init__(
        self,
        dataset: Any,
        order: np.ndarray,
        cfg: TrainConfig,
        first_step: int,
        n_steps: int,
        rank: int,
        world: int,
    ) -> None:
        self.dataset = dataset
        self.order = order
        self.cfg = cfg
        self.first_step = first_step
        self.n_steps = n_steps
        self.rank = rank
        self.world = world

    def __len__(self) -> int:
        return (self.n_steps - self.first_step) * self.cfg.grad_accum

    def __getitem__(self, k: int) -> list[Mapping[str, Any]]:
        step = self.first_step + k // self.cfg.grad_accum
        rows = micro_batch_rows(
            self.order, step, k % self.cfg.grad_accum, self.cfg, self.rank, self.world
        )
        items = []
        for epoch, index in rows.tolist():
            self.dataset.set_epoch(epoch)
            items.append(self.dataset[index])
        return items
