"""Tests of the Molmo trainer: recipe pieces by hand-computed values, then the CLI end to
end on the `debug` preset (one epoch, overfitting, exact resume)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from model_service import checkpoint, data, train
from model_service.train import loop
from model_service.train.cli import parse_args
from model_service.train.config import COMPONENTS, TrainConfig
from model_service.train.optim import (
    build_optimizer,
    clip_per_component,
    component_of,
    loss_sums,
    lr_at,
    set_lrs,
)
from model_service.train.order import build_order, micro_batch_rows, total_steps
from model_service.train.runfiles import (
    CHECKPOINT_DIR,
    CURVE,
    METRICS,
    PROGRESS,
    load_train_state,
    read_metrics,
)

REPO = Path(__file__).resolve().parents[2]


def _cfg(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "stage": "caption",
        "preset": "debug",
        "data": ["unused"],
        "out": "unused",
        "steps": 10,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


# --- schedule ---------------------------------------------------------------------------


def test_lr_schedule_hand_computed() -> None:
    # warmup 10 of 110 steps, cosine to 10 %: the midpoint of the decay is 0.55 * peak.
    values = {s: lr_at(s, 2.0, 10, 110, 0.1) for s in (1, 5, 10, 60, 110)}
    assert values == pytest.approx({1: 0.2, 5: 1.0, 10: 2.0, 60: 1.1, 110: 0.2})
    # A quarter into the decay: floor + (peak - floor) * (1 + cos(pi/4)) / 2.
    expected = 0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi / 4))
    assert lr_at(35, 2.0, 10, 110, 0.1) == pytest.approx(expected)
    assert lr_at(3, 1.0, 0, 3, 0.1) == pytest.approx(0.1)


def test_stage_defaults_and_scaled_warmup() -> None:
    cfg = _cfg(warmup_scale=0.01)
    assert (cfg.component("connector").lr, cfg.component("connector").warmup) == (2e-4, 2)
    assert (cfg.component("vit").lr, cfg.component("vit").warmup) == (6e-6, 20)
    assert (cfg.component("llm").lr, cfg.component("llm").warmup) == (2e-5, 20)
    sft = _cfg(stage="sft", init="ckpt", lr={"llm": 3e-5})
    assert [sft.component(c).lr for c in ("vit", "connector", "llm")] == [5e-6, 5e-6, 3e-5]
    assert sft.component("vit").warmup == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"epochs": 1.0}, "steps/epochs"),
        ({"batch_size": 6, "grad_accum": 4}, "batch_size"),
        ({"stage": "sft"}, "init"),
        ({"lr": {"decoder": 1e-5}}, "unknown component"),
        ({"mixture": {"human": 1.0}}, "caption stage has no mixture"),
        ({"residual_dropout": 1.5}, "residual_dropout"),
    ],
)
def test_config_refuses_invalid_combinations(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _cfg(**overrides).validate()


def test_unfinished_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup-scale"):
        _cfg().check_total_steps(100)


# --- optimizer groups and clipping --------------------------------------------------------


class _ThreeParts(nn.Module):
    """Parameter names shaped like the Molmo checkpoint keys of each component."""

    def __init__(self) -> None:
        super().__init__()
        self.vision_backbone = nn.ModuleDict(
            {"image_vit": nn.Linear(2, 2, bias=False), "image_projector": nn.Linear(2, 2)}
        )
        self.transformer = nn.Linear(2, 2, bias=False)


def test_param_groups_follow_components() -> None:
    assert component_of("vision_backbone.image_vit.transformer.resblocks.0.wq") == "vit"
    assert component_of("vision_backbone.pad_embed") == "connector"
    assert component_of("vision_backbone.image_pooling_2d.wq.weight") == "connector"
    assert component_of("transformer.wte.new_embedding") == "llm"
    optimizer = build_optimizer(_ThreeParts(), _cfg(warmup_scale=0.01))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert [len(groups[n]["params"]) for n in ("vit", "connector", "llm")] == [1, 2, 1]
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    assert optimizer.defaults["eps"] == 1e-6
    assert optimizer.defaults["weight_decay"] == 0.0
    set_lrs(optimizer, 1, 10, 0.1)
    assert groups["connector"]["lr"] == pytest.approx(1e-4)  # 1 of 2 warmup steps
    assert groups["llm"]["lr"] == pytest.approx(1e-6)  # 1 of 20 warmup steps


def test_clipping_is_per_component() -> None:
    model = _ThreeParts()
    optimizer = build_optimizer(model, _cfg())
    vit = model.vision_backbone["image_vit"].weight
    proj = model.vision_backbone["image_projector"]
    vit.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # norm 5 -> scaled to 1
    proj.weight.grad = torch.full((2, 2), 0.1)  # norm 0.2 (with bias 0): untouched
    proj.bias.grad = torch.zeros(2)
    model.transformer.weight.grad = torch.full((2, 2), 10.0)  # norm 20 -> scaled to 1
    norms = clip_per_component(optimizer, 1.0)
    assert norms == pytest.approx({"vit": 5.0, "connector": 0.2, "llm": 20.0})
    assert vit.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(vit.grad, torch.tensor([[0.6, 0.0], [0.0, 0.8]]), atol=1e-6)
    assert torch.equal(proj.weight.grad, torch.full((2, 2), 0.1))
    assert model.transformer.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


# --- loss -------------------------------------------------------------------------------


def test_cross_entropy_and_z_loss_hand_computed() -> None:
    # Position 0: logits (0, ln 3, 0) -> logsumexp = ln 5; target 1 -> ce = ln 5 - ln 3.
    # Position 1 is ignored (-100); position 2: all zeros -> lse = ln 3, target 0 -> ln 3.
    logits = torch.tensor([[[0.0, math.log(3.0), 0.0], [9.0, 9.0, 9.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[1, -100, 0]])
    sums = loss_sums(logits.to(torch.bfloat16).float(), labels, 1e-4)
    assert sums.tokens == 2
    assert sums.ce.item() == pytest.approx(math.log(5 / 3) + math.log(3), rel=1e-3)
    assert sums.z.item() == pytest.approx(1e-4 * (math.log(5) ** 2 + math.log(3) ** 2), rel=5e-3)
    exact = loss_sums(logits, labels, 1e-4)
    assert exact.z.dtype == torch.float32
    assert exact.z.item() == pytest.approx(1e-4 * (math.log(5) ** 2 + math.log(3) ** 2))


# --- data order ---------------------------------------------------------------------------


def test_order_covers_every_example_once_per_epoch_and_splits_by_rank() -> None:
    cfg = _cfg(batch_size=4, grad_accum=2, steps=None, epochs=2.0)
    order = build_order(6, cfg, steps=3)
    assert order.shape == (12, 2)
    assert sorted(order[:6, 1].tolist()) == list(range(6))
    assert set(order[:6, 0].tolist()) == {0} and set(order[6:, 0].tolist()) == {1}
    assert np.array_equal(order, build_order(6, cfg, steps=3))
    shares = [micro_batch_rows(order, 1, m, cfg, r, 2) for r in range(2) for m in range(2)]
    assert np.array_equal(np.concatenate(shares), order[4:8])
    assert total_steps(cfg, 6) == 3


# --- end to end on the debug preset -------------------------------------------------------


@pytest.fixture(scope="module")
def cap_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 pixmo-cap rows over 16 tiny images: a colour word is the whole caption."""
    root = tmp_path_factory.mktemp("cap_export")
    (root / "images").mkdir()
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        name = list(colours)[i % 3]
        pixels = np.zeros((48, 64, 3), np.uint8) + np.asarray(colours[name], np.uint8)
        pixels[rng.integers(0, 40) :][:8] = 255  # a white stripe so images differ
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        caption = f"A {name} square."
        rows.append(
            {"image_url": f"images/{i}.png", "caption": caption, "transcripts": [f"um {name}"]}
        )
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"dataset": "pixmo-cap", "format": "jsonl", "shards": ["rows.jsonl"], "rows": 16}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _cli(export: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--stage", "caption", "--preset", "debug", "--data", str(export), "--out", str(out),
        "--batch-size", "4", "--seq-len", "160", "--warmup-scale", "0.001", *extra,
    ]  # fmt: skip


def test_one_epoch_end_to_end_through_the_cli(cap_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train.main(_cli(cap_export, out, "--epochs", "1")) == 0
    rows = read_metrics(out / METRICS)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # 16 examples / batch 4
    assert all(math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 for r in rows)
    assert rows[0]["lr_connector"] == pytest.approx(2e-4)  # warmup scaled to one step
    assert (out / CURVE).stat().st_size > 1000
    loaded = checkpoint.load(out / CHECKPOINT_DIR)
    assert loaded.config.name == "debug"
    state = load_train_state(out / CHECKPOINT_DIR)
    assert state["step"] == 4 and state["examples_seen"] == 16
    assert TrainConfig.load(out / "train_config.json").epochs == 1.0
    progress = json.loads((out / PROGRESS).read_text())
    assert progress["state"] == "done" and progress["step"] == progress["total_steps"] == 4
    assert [step for step, _ in progress["loss_history"]] == [1, 2, 3, 4]
    assert progress["checkpoint"] == str(out / CHECKPOINT_DIR)


def test_progress_goes_to_the_callback_and_failures_are_reported(
    cap_export: Path, tmp_path: Path
) -> None:
    # What a platform task watching a run relies on: one call per step with the loss,
    # then "done"; a run that cannot start says "failed" with the reason.
    seen: list[dict[str, object]] = []
    cfg = _cfg(data=[str(cap_export)], out=str(tmp_path / "ok"), steps=3, batch_size=4,
               seq_len=160, warmup={c: 1 for c in COMPONENTS})  # fmt: skip
    train.run(cfg, progress=seen.append)
    steps = [p["step"] for p in seen if p["state"] == "running" and p["loss"] is not None]
    assert steps[:3] == [1, 2, 3] and seen[-1]["state"] == "done"
    bad = _cfg(data=[str(tmp_path / "missing")], out=str(tmp_path / "bad"), steps=3)
    failed: list[dict[str, object]] = []
    with pytest.raises(FileNotFoundError):
        train.run(bad, progress=failed.append)
    assert failed == []  # nothing was reported before the run existed

    class Unreadable:  # a dataset whose items cannot be read, as a corrupt shard would
        def __len__(self) -> int:
            return 16

        def set_epoch(self, epoch: int) -> None:
            pass

        def __getitem__(self, index: int) -> dict[str, object]:
            raise OSError(f"item {index} is unreadable")

    late = _cfg(data=["in-memory"], out=str(tmp_path / "late"), steps=3, batch_size=4,
                warmup={c: 1 for c in COMPONENTS})  # fmt: skip
    with pytest.raises(OSError):
        train.run(late, dataset=Unreadable(), progress=failed.append)
    report = json.loads((tmp_path / "late" / PROGRESS).read_text())
    assert report["state"] == "failed" and "unreadable" in report["error"]
    assert failed[-1] == report


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / CHECKPOINT_DIR / "model.safetensors"))


@pytest.mark.slow  # trains on CPU: 44-350 s on 2 loaded cores
def test_resume_continues_exactly(cap_export: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.main(_cli(cap_export, straight, "--steps", "4"))
    train.main(_cli(cap_export, split, "--steps", "4", "--stop-at", "2"))
    assert load_train_state(split / CHECKPOINT_DIR)["step"] == 2
    train.main(_cli(cap_export, split, "--steps", "4", "--resume"))
    expected, got = _weights(straight), _weights(split)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    assert [r["step"] for r in read_metrics(split / METRICS)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="seed"):
        train.main(_cli(cap_export, split, "--steps", "4", "--resume", "--seed", "5"))


@pytest.mark.slow  # trains on CPU: 44-350 s on 2 loaded cores
def test_gradient_accumulation_matches_one_big_batch(cap_export: Path, tmp_path: Path) -> None:
    # Loss divided by the loss tokens of the whole global batch: two micro-batches of 2
    # must give the update of one batch of 4.
    args = ("--steps", "2", "--residual-dropout", "0")
    train.main(_cli(cap_export, tmp_path / "one", *args))
    train.main(_cli(cap_export, tmp_path / "two", *args, "--grad-accum", "2"))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow  # trains on CPU: 44-350 s on 2 loaded cores
def test_loss_falls_when_overfitting_one_batch(cap_export: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        data=[str(cap_export)], out=str(tmp_path), steps=25, batch_size=4, seq_len=160,
        lr={"vit": 1e-2, "connector": 1e-2, "llm": 1e-2}, warmup={c: 0 for c in COMPONENTS},
        residual_dropout=0.0,
    )  # fmt: skip
    info = loop.setup_distributed(cfg)
    assets = loop.load_assets(cfg)
    dataset = loop.build_dataset(cfg, assets)
    batch = data.collate([dataset[i] for i in range(4)], pad_id=assets.tokenizer.pad_id)
    trainer = loop.Trainer(cfg, assets, info, n_steps=25)
    losses = []
    for _ in range(25):
        stats = trainer.train_step([batch])
        losses.append((stats.ce_sum + stats.z_sum) / stats.loss_tokens)
    assert losses[-1] < 0.3 * losses[0], losses


def _torchrun(args: list[str]) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*launcher, "-m", "model_service.train", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # trains on CPU: 44-350 s on 2 loaded cores
def test_two_process_fsdp_on_gloo_matches_one_process(cap_export: Path, tmp_path: Path) -> None:
    # torchrun with 2 CPU ranks: FSDP2 shards, each rank reads half of every global
    # batch, clipping norms are all-reduced, and a sharded run stopped and resumed
    # must land on the weights of one uninterrupted single-process run.
    fixed = ("--steps", "4", "--residual-dropout", "0")
    _torchrun(_cli(cap_export, tmp_path / "fsdp", *fixed, "--stop-at", "2"))
    _torchrun(_cli(cap_export, tmp_path / "fsdp", *fixed, "--resume"))
    train.main(_cli(cap_export, tmp_path / "single", *fixed))
    sharded, single = _weights(tmp_path / "fsdp"), _weights(tmp_path / "single")
    for name in single:
        torch.testing.assert_close(sharded[name], single[name], rtol=1e-4, atol=1e-6, msg=name)
    norms = [r["grad_norm_llm"] for r in read_metrics(tmp_path / "fsdp" / METRICS)]
    expected = [r["grad_norm_llm"] for r in read_metrics(tmp_path / "single" / METRICS)]
    assert norms == pytest.approx(expected, rel=1e-4)


def test_cli_maps_every_flag(tmp_path: Path) -> None:
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"human": 38.1, "synthetic": 31.6}))
    cfg = parse_args(
        [
            "--stage", "sft", "--init", "ckpt", "--data", "a", "--data", "b", "--out", "o",
            "--steps", "9", "--mix-file", str(rates), "--mix", "synthetic=10",
            "--lr-llm", "3e-5", "--warmup-vit", "7", "--time-limit", "60", "--stop-at", "3",
        ]
    )  # fmt: skip
    assert cfg.mixture == {"human": 38.1, "synthetic": 10.0}
    assert (cfg.lr, cfg.warmup) == ({"llm": 3e-5}, {"vit": 7})
    assert (cfg.time_limit, cfg.stop_at, cfg.data) == (60.0, 3, ["a", "b"])
    with pytest.raises(SystemExit):
        parse_args(["--stage", "sft", "--data", "a", "--out", "o", "--steps", "1", "--epochs", "1"])
