"""Checkpoints: our native format and the released Molmo-0924 layout.

Native: a folder with `config.json` (the typed `MolmoConfig`), `model.safetensors`, and
`extra.json` when the caller passes extra metadata. `load` also recognises an official
Molmo-0924 folder (its `config.json` has `model_type: molmo`) and maps its keys (spec §4)
onto ours with `legacy_pad_mask_shift` set, since those weights were trained with it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from model_service.config import N_EXTRA_TOKENS, LLMConfig, MolmoConfig, TokenizerConfig
from model_service.model import MolmoModel
from model_service.preprocess import ImagePreprocessor
from model_service.tokenizer import MolmoTokenizer, load_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
EXTRA_FILE = "extra.json"


@dataclass
class Loaded:
    model: MolmoModel
    tokenizer: MolmoTokenizer
    preprocessor: ImagePreprocessor
    config: MolmoConfig


def save(
    directory: str | Path, model: MolmoModel, config: MolmoConfig, extra: dict | None = None
) -> Path:
    """Write config.json + model.safetensors (+ extra.json) into `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(config.to_json())
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    if extra is not None:
        (out / EXTRA_FILE).write_text(json.dumps(extra, indent=2, sort_keys=True))
    return out


def load(directory: str | Path, device: str = "cpu", *, base: MolmoConfig | None = None) -> Loaded:
    """Load a native checkpoint, or an official Molmo-0924 folder (detected by its config;
    `base` then gives its vision/connector/preprocessing settings, see load_molmo_0924)."""
    folder = Path(directory)
    raw = json.loads((folder / CONFIG_FILE).read_text())
    if raw.get("model_type") == "molmo":
        return load_molmo_0924(folder, base=base, device=device)
    config = MolmoConfig.from_dict(raw)
    model = MolmoModel(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    return _bundle(model.to(device).eval(), config)


def _bundle(model: MolmoModel, config: MolmoConfig) -> Loaded:
    tokenizer = load_tokenizer(config.tokenizer)
    return Loaded(model, tokenizer, ImagePreprocessor(config.preprocess, tokenizer), config)


# ----------------------------------------------------------------------------- Molmo-0924


def molmo_0924_config(
    folder: Path, state: dict[str, torch.Tensor], base: MolmoConfig
) -> MolmoConfig:
    """Our config for an official folder: LLM shapes from its config.json, vision/connector/
    preprocessing from `base` (the official ones are fixed CLIP-336 settings), projector
    width from the weights, legacy mask order on, tokenizer from the folder."""
    raw = json.loads((folder / CONFIG_FILE).read_text())
    if raw.get("moe_num_experts") or raw.get("block_type") == "moe":
        raise NotImplementedError("MolmoE checkpoints (mixture-of-experts blocks) are not mapped")
    if raw.get("layer_norm_type", "rms") != "rms":
        raise NotImplementedError(f"layer_norm_type {raw['layer_norm_type']!r} is not supported")
    arch: Literal["qwen2", "olmo2", "llama"] = (
        "qwen2" if raw.get("qkv_bias") else "olmo2" if raw.get("norm_after") else "llama"
    )
    vocab = int(raw.get("embedding_size") or raw["vocab_size"])
    d_model, n_heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
    llm = LLMConfig(
        arch=arch,
        vocab_size=vocab,
        d_model=d_model,
        n_layers=int(raw["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(raw.get("num_key_value_heads") or n_heads),
        intermediate_size=int(raw["intermediate_size"]) // 2,  # stored fused: up + gate
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        norm_eps=float(raw.get("layer_norm_eps", 1e-5)),
        max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
        tie_embeddings=bool(raw.get("weight_tying", False)),
    )
    hidden = state["model.vision_backbone.image_projector.w1.weight"].shape[0]
    connector = dataclasses.replace(base.connector, mlp_hidden=hidden, legacy_pad_mask_shift=True)
    tokenizer = TokenizerConfig(kind="hf", path=str(folder), base_vocab_size=vocab)
    return dataclasses.replace(
        base, name=folder.name, llm=llm, connector=connector, tokenizer=tokenizer
    )


def _split_rows(t: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    return list(torch.split(t, sizes, dim=0))


def map_molmo_0924(state: dict[str, torch.Tensor], cfg: MolmoConfig) -> dict[str, torch.Tensor]:
    """Rename and split official 0924 tensors into our state-dict layout."""
    out: dict[str, torch.Tensor] = {}
    llm, hd = cfg.llm, cfg.llm.head_dim
    qkv = [llm.n_heads * hd, llm.n_kv_heads * hd, llm.n_kv_heads * hd]
    norms = (
        ("post_attention_layernorm", "post_feedforward_layernorm")
        if llm.arch == "olmo2"  # norm_after: the norms act on the block outputs
        else ("input_layernorm", "post_attention_layernorm")
    )
    for key, value in state.items():
        name = key.removeprefix("model.")
        if m := re.fullmatch(r"transformer\.blocks\.(\d+)\.(\w+)\.(weight|bias)", name):
            layer, part, kind = m.groups()
            pre = f"llm.layers.{layer}."
            if part == "att_proj":
                for proj, t in zip(("q", "k", "v"), _split_rows(value, qkv), strict=True):
                    out[f"{pre}self_attn.{proj}_proj.{kind}"] = t
            elif part == "ff_proj":  # cat[up, gate] along the output rows
                up, gate = value.chunk(2, dim=0)
                out[f"{pre}mlp.up_proj.{kind}"], out[f"{pre}mlp.gate_proj.{kind}"] = up, gate
            else:
                target = {
                    "attn_out": "self_attn.o_proj",
                    "ff_out": "mlp.down_proj",
                    "attn_norm": norms[0],
                    "ff_norm": norms[1],
                    "q_norm": "self_attn.q_norm",
                    "k_norm": "self_attn.k_norm",
                }[part]
                out[f"{pre}{target}.{kind}"] = value
        else:
            out.update(_map_other(name, value, cfg))
    return out


_VIT_PARTS = {
    "attention_norm": "attention_norm",
    "ffn_norm": "ffn_norm",
    "feed_forward.w1": "w1",
    "feed_forward.w2": "w2",
}


def _map_other(name: str, value: torch.Tensor, cfg: MolmoConfig) -> dict[str, torch.Tensor]:
    """Embeddings, head, final norm and the whole vision backbone."""
    v = cfg.llm.vocab_size
    if name == "transformer.wte.embedding":
        return {"llm.embed_tokens.weight": value[:v]}
    if name == "transformer.wte.new_embedding":
        return {"new_embedding": value}
    if name == "transformer.ln_f.weight":
        return {"llm.norm.weight": value}
    if name == "transformer.ff_out.weight":  # text rows only; extra tokens are never output
        head = value.new_zeros(v + N_EXTRA_TOKENS, value.shape[1])
        head[: value.shape[0]] = value
        return {"lm_head.weight": head}
    vb = "vision_backbone."
    simple = {
        f"{vb}pad_embed": "pad_embed",
        f"{vb}image_vit.class_embedding": "vit.cls_embed",
        f"{vb}image_vit.positional_embedding": "vit.pos_embed",
        f"{vb}image_vit.patch_embedding.weight": "vit.patch_embed.weight",
    }
    if name in simple:
        return {simple[name]: value}
    if m := re.fullmatch(rf"{vb}image_vit\.pre_ln\.(weight|bias)", name):
        return {f"vit.pre_ln.{m[1]}": value}
    if m := re.fullmatch(rf"{vb}image_(pooling_2d|projector)\.(\w+)\.(weight|bias)", name):
        return {f"{'pool' if m[1] == 'pooling_2d' else 'projector'}.{m[2]}.{m[3]}": value}
    blk = rf"{vb}image_vit\.transformer\.resblocks\.(\d+)\."
    if m := re.fullmatch(blk + r"attention\.(w[qkvo])\.(weight|bias)", name):
        return {f"vit.blocks.{m[1]}.attention.{m[2]}.{m[3]}": value}
    if m := re.fullmatch(
        blk + r"(attention_norm|ffn_norm|feed_forward\.w[12])\.(weight|bias)", name
    ):
        return {f"vit.blocks.{m[1]}.{_VIT_PARTS[m[2]]}.{m[3]}": value}
    raise KeyError(f"unmapped Molmo-0924 tensor {name!r}")


def read_safetensors_folder(folder: Path) -> dict[str, Any]:
    """All tensors of every *.safetensors shard in `folder`."""
    state: dict[str, Any] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    if not state:
        raise FileNotFoundError(f"no .safetensors files in {folder}")
    return state


def load_molmo_0924(
    directory: str | Path, *, base: MolmoConfig | None = None, device: str = "cpu"
) -> Loaded:
    """Load an official Molmo-0924 folder (config.json + safetensors shards + tokenizer).

    `base` supplies the vision, connector and preprocessing settings (default: the
    full-scale CLIP ViT-L/14-336 ones every 0924 model uses).
    """
    folder = Path(directory)
    state = read_safetensors_folder(folder)
    config = molmo_0924_config(folder, state, base or MolmoConfig(name="molmo-0924"))
    model = MolmoModel(config)
    model.load_state_dict(map_molmo_0924(state, config), strict=True)
    return _bundle(model.to(device).eval(), config)
