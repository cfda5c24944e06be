"""Optimizer pieces of the Molmo recipe (PIXMO_SPEC.md §5), free of any data or model code.

- one AdamW parameter group per component (ViT, connector, LLM), each with its own peak
  LR and warmup;
- linear warmup to the peak, then cosine down to `final_lr_ratio` of the peak;
- gradient-norm clipping per component (a huge LLM gradient must not shrink the
  connector's update, and the other way round);
- cross-entropy plus z-loss computed in fp32, summed, so the caller can divide by the
  average number of loss tokens per device over the global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from model_service.train.config import COMPONENTS, TrainConfig

IGNORE_INDEX = -100


# Name prefixes of each vision component, for both MolmoModel's own attribute names and
# the released checkpoints' keys (PIXMO_SPEC.md §4); everything else is the LLM.
_VIT_PREFIXES = ("vit.", "vision_backbone.image_vit.", "model.vision_backbone.image_vit.")
_CONNECTOR_PREFIXES = (
    "pad_embed",
    "pool.",
    "projector.",
    "vision_backbone.",
    "model.vision_backbone.",
)


def component_of(param_name: str) -> str:
    """Which optimizer group a parameter belongs to, from its name.

    The connector is everything of the vision side that is not the ViT itself (2x2
    attention pooling, SwiGLU projector, pad_embed); the 128 new special-token
    embeddings belong to the LLM.
    """
    if param_name.startswith(_VIT_PREFIXES):
        return "vit"
    if param_name.startswith(_CONNECTOR_PREFIXES):
        return "connector"
    return "llm"


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, object]]:
    """AdamW parameter groups, one per component, carrying their schedule fields."""
    by_component: dict[str, list[nn.Parameter]] = {name: [] for name in COMPONENTS}
    for name, param in model.named_parameters():
        if param.requires_grad:
            by_component[component_of(name)].append(param)
    empty = [name for name, params in by_component.items() if not params]
    if empty:
        raise ValueError(
            f"no trainable parameters for components {empty}: the model's parameter "
            "names no longer match component_of()"
        )
    groups: list[dict[str, object]] = []
    for name in COMPONENTS:
        spec = cfg.component(name)
        groups.append(
            {
                "params": by_component[name],
                "name": name,
                "lr": spec.lr,
                "peak_lr": spec.lr,
                "warmup": spec.warmup,
            }
        )
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (0.9, 0.95), eps 1e-6, no weight decay, one group per component."""
    return torch.optim.AdamW(
        param_groups(model, cfg),
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )


def lr_at(step: int, peak: float, warmup: int, total: int, final_ratio: float) -> float:
    """LR of the `step`-th optimizer update (1-based) of a run of `total` updates.

    Updates 1..warmup ramp linearly to the peak (update `warmup` uses the peak);
    afterwards a half cosine falls to `final_ratio * peak`, reached at update `total`.
    """
    if step < 1:
        raise ValueError(f"step is 1-based, got {step}")
    if warmup > 0 and step <= warmup:
        return peak * step / warmup
    floor = peak * final_ratio
    decay_steps = total - warmup
    if decay_steps <= 0:
        return peak
    progress = min(1.0, (step - warmup) / decay_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lrs(optimizer: torch.optim.Optimizer, step: int, total: int, final_ratio: float) -> None:
    """Write the schedule's LR for update `step` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, group["peak_lr"], group["warmup"], total, final_ratio)


def _local_grads(params: Iterable[nn.Parameter]) -> tuple[list[torch.Tensor], list[bool]]:
    """Gradients as plain local tensors, and whether each is a shard of a bigger tensor."""
    grads, sharded = [], []
    for param in params:
        grad = param.grad
        if grad is None:
            continue
        to_local = getattr(grad, "to_local", None)  # FSDP2 gives DTensor shards
        grads.append(to_local() if to_local is not None else grad)
        sharded.append(to_local is not None)
    return grads, sharded


def clip_per_component(optimizer: torch.optim.Optimizer, max_norm: float) -> dict[str, float]:
    """Clip each parameter group's gradient to `max_norm` on its own; return pre-clip norms.

    Under FSDP each rank holds a shard of every gradient, so the squared norms of the
    shards are summed over ranks before the square root; replicated gradients are not.
    """
    norms: dict[str, float] = {}
    for group in optimizer.param_groups:
        grads, sharded = _local_grads(group["params"])
        device = grads[0].device if grads else torch.device("cpu")
        shard_sq = torch.zeros((), dtype=torch.float32, device=device)
        full_sq = torch.zeros((), dtype=torch.float32, device=device)
        for grad, is_shard in zip(grads, sharded, strict=True):
            sq = grad.detach().float().pow(2).sum()
            if is_shard:
                shard_sq += sq
            else:
                full_sq += sq
        if dist.is_available() and dist.is_initialized() and any(sharded):
            dist.all_reduce(shard_sq)
        norm = (shard_sq + full_sq).sqrt()
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        for grad in grads:
            grad.mul_(coef.to(grad.dtype))
        norms[group["name"]] = float(norm)
    return norms


@dataclass
class LossSums:
    """Summed (not averaged) loss terms of one micro-batch, in fp32."""

    ce: torch.Tensor  # sum of token cross-entropies over loss tokens
    z: torch.Tensor  # z_weight * sum of logsumexp(logits)^2 over loss tokens
    tokens: int  # number of loss tokens


def loss_sums(logits: torch.Tensor, labels: torch.Tensor, z_weight: float) -> LossSums:
    """Cross-entropy and z-loss over positions whose label is not -100.

    Logits are upcast to fp32 after selecting the loss positions: under bf16 autocast
    the reductions (logsumexp) must run in fp32, and selecting first keeps the fp32
    copy small.
    """
    mask = labels != IGNORE_INDEX
    picked = logits[mask].float()  # [T, V]
    targets = labels[mask]  # [T]
    lse = torch.logsumexp(picked, dim=-1)  # [T]
    target_logit = picked.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [T]
    ce = (lse - target_logit).sum()
    z = z_weight * lse.pow(2).sum()
    return LossSums(ce=ce, z=z, tokens=int(mask.sum()))


def avg_loss_tokens_per_device(local_tokens: int, device: torch.device) -> float:
    """Loss tokens of the whole global batch divided by the number of devices.

    Each device divides its summed loss by this number; FSDP/DDP then average the
    gradients over devices, so the update equals the global per-token mean while a
    device with few loss tokens does not get its tokens up-weighted.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return float(max(local_tokens, 1))
    total = torch.tensor([float(local_tokens)], device=device)
    dist.all_reduce(total)
    return max(float(total.item()) / dist.get_world_size(), 1.0)
