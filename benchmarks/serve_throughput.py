"""Molmo serving throughput on CPU: N requests one at a time vs 8 at a time.

    .venv/bin/python benchmarks/serve_throughput.py [--checkpoint DIR] [--requests 16]

Starts `python -m model_service.serve --checkpoint` (default: a random `debug`
checkpoint written to a temporary folder, seed 0) on a free port, warms it up, then
sends the same image requests (a 96x64 drawing as a data: URL, "Describe this image.",
temperature 0, `--max-tokens` each) sequentially and with `--concurrency` workers.
Prints requests/s, completion tokens/s, latency p50/p95 for both, the speedup from
batching, and the machine's load average (the figure the README quotes must say it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.serving_load import free_port, machine, run_load, running  # noqa: E402


def debug_checkpoint(folder: Path) -> Path:
    from model_service import checkpoint
    from model_service.model import MolmoModel
    from model_service.presets import get_preset

    cfg = get_preset("debug")
    return checkpoint.save(folder / "checkpoint", MolmoModel(cfg, seed=0), cfg)


def bodies(n: int, max_tokens: int) -> list[dict[str, object]]:
    from tests.molmo_fixtures import draw_example, png_data_url

    images = [png_data_url(draw_example(kind)) for kind in ("square", "disc")]
    out: list[dict[str, object]] = []
    for i in range(n):
        content = [
            {"type": "text", "text": "Describe this image."},
            {"type": "image_url", "image_url": {"url": images[i % 2]}},
        ]
        out.append({"messages": [{"role": "user", "content": content}], "temperature": 0,
                    "max_tokens": max_tokens})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="serve this folder instead of a random debug one")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.checkpoint) if args.checkpoint else debug_checkpoint(Path(tmp))
        port = free_port()
        command = [
            sys.executable, "-m", "model_service.serve", "--checkpoint", str(folder),
            "--port", str(port), "--threads", str(args.threads),
            "--max-batch", str(args.concurrency), "--device", "cpu",
        ]  # fmt: skip
        before = machine()
        with running(command, port, Path(tmp) / "serve.log") as base:
            run_load(base, bodies(2, args.max_tokens), 1)  # warm-up
            work = bodies(args.requests, args.max_tokens)
            single = run_load(base, work, 1).summary()
            batched = run_load(base, work, args.concurrency).summary()
    report = {
        "model": "debug (random)" if not args.checkpoint else str(folder),
        "max_tokens": args.max_tokens,
        "sequential": single,
        "concurrent": batched,
        "speedup_tokens_per_s": round(batched["tokens_per_s"] / single["tokens_per_s"], 2),
        "machine_before": before,
        "machine_after": machine(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
