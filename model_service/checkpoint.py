"""Checkpoints: our native format and the released Molmo-0924 layout.

Native: a folder with `config.json` (the typed `MolmoConfig`), `model.safetensors`, and
`extra.json` when the caller passes extra metadata. `load` also recognises an official
Molmo-0924 folder (its `config.json` has `model_type: molmo`) and maps its keys (spec §4)
onto ours with `legacy_pad_mask_shift` set, since those weights were trained with it: dense
Molmo-7B-D/7B-O/72B blocks and MolmoE-1B mixture-of-experts blocks (README.md, "Official
Molmo-0924 folders", lists what was verified and where).
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

from model_service.config import (
    IMAGE_TOKEN_STRINGS,
    ImageTokenIds,
    LLMConfig,
    MolmoConfig,
    TokenizerConfig,
)
from model_service.model import MolmoModel
from model_service.preprocess import ImagePreprocessor
from model_service.tokenizer import (
    MolmoTokenizer,
    image_token_ids_of,
    load_hf_tokenizer,
    load_tokenizer,
)

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
    state = load_file(str(folder / WEIGHTS_FILE))
    head = state.get("lm_head.weight")
    if head is not None and head.shape[0] == config.total_vocab:
        # Checkpoints written before the head covered the text vocabulary only carried
        # untrained rows for the extra tokens; they are never scored, so drop them.
        state["lm_head.weight"] = head[: config.llm.n_logits]
    model.load_state_dict(state, strict=True)
    return _bundle(model.to(device).eval(), config)


def _bundle(model: MolmoModel, config: MolmoConfig) -> Loaded:
    tokenizer = load_tokenizer(config.tokenizer)
    return Loaded(model, tokenizer, ImagePreprocessor(config.preprocess, tokenizer), config)


# ----------------------------------------------------------------------------- Molmo-0924
#
# The released folders come in two config dialects (see README.md, "Official Molmo-0924
# folders"): Molmo-7B-D/7B-O/72B write transformers-style names (`hidden_size`,
# `num_attention_heads`, fused `intermediate_size`, ...), MolmoE-1B writes OLMo-style names
# (`d_model`, `n_heads`, `moe_num_experts`, ...). Shapes that the weights themselves fix
# (embedding rows, tied head, expert width) are read from the tensors, not the config.

_EMBEDDING = "model.transformer.wte.embedding"
_HEAD = "model.transformer.ff_out.weight"


def _field(raw: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first of `names` that the config sets (not null), else `default`."""
    for name in names:
        if raw.get(name) is not None:
            return raw[name]
    if default is None:
        raise KeyError(f"Molmo-0924 config.json has none of {names}")
    return default


def _is_moe(raw: dict[str, Any]) -> bool:
    # OLMo-style configs carry a default moe_num_experts even for dense blocks, so the block
    # type decides when it is present.
    if raw.get("block_type") is not None:
        return bool(raw["block_type"] == "moe")
    return bool(raw.get("moe_num_experts"))


def _refuse_unsupported(raw: dict[str, Any]) -> None:
    """Fail loudly on settings the transformers decoders here cannot reproduce."""
    if raw.get("layer_norm_type", "rms") != "rms":
        raise NotImplementedError(f"layer_norm_type {raw['layer_norm_type']!r} is not supported")
    if raw.get("clip_qkv") is not None:  # Molmo clamps before the q/k norms, OLMoE after
        raise NotImplementedError(f"clip_qkv={raw['clip_qkv']} is not supported")
    if raw.get("rope_impl", "llama") not in ("llama", "cockatoo"):
        raise NotImplementedError(f"rope_impl {raw['rope_impl']!r} is not supported")
    if raw.get("moe_shared_expert"):
        raise NotImplementedError("MoE blocks with a shared expert are not supported")


def _decoder_arch(raw: dict[str, Any]) -> Literal["qwen2", "olmo2", "llama", "olmoe"]:
    """The transformers family whose block matches the config's flags."""
    bias, after, qk_norm = (
        bool(raw.get(k)) for k in ("qkv_bias", "norm_after", "attention_layer_norm")
    )
    moe = _is_moe(raw)
    if moe and qk_norm and not (bias or after):
        return "olmoe"
    if not moe and after and qk_norm and not bias:
        return "olmo2"
    if not (moe or after or qk_norm):
        return "qwen2" if bias else "llama"
    raise NotImplementedError(
        f"no decoder family for moe={moe} qkv_bias={bias} norm_after={after} "
        f"attention_layer_norm={qk_norm}"
    )


def _expert_width(state: dict[str, torch.Tensor], n_experts: int) -> int:
    """Hidden width of one expert, from block 0 in either MoE layout (see _map_experts)."""
    fused = state.get("model.transformer.blocks.0.ffn.experts.mlp.w1")
    if fused is not None:
        return fused.shape[0] // n_experts
    single = state.get("model.transformer.blocks.0.mlp.experts.0.gate_proj.weight")
    if single is None:
        raise KeyError("MolmoE checkpoint without expert weights in block 0")
    return single.shape[0]


def _output_vocab(raw: dict[str, Any], rows: int) -> int | None:
    """The real text vocabulary: config.json's `vocab_size` when it is below the padded
    embedding rows (7B-O, MolmoE-1B), else all rows (None)."""
    declared = raw.get("vocab_size")
    if isinstance(declared, int) and 0 < declared < rows:
        return declared
    return None


def _llm_config(raw: dict[str, Any], state: dict[str, torch.Tensor]) -> LLMConfig:
    arch = _decoder_arch(raw)
    rows = state[_EMBEDDING].shape[0]
    n_heads = int(_field(raw, "num_attention_heads", "n_heads"))
    n_experts = int(raw["moe_num_experts"]) if arch == "olmoe" else 0
    return LLMConfig(
        arch=arch,
        # 7B-O's config vocab_size is the unpadded tokenizer size; the rows are what count
        # for the embedding, the config's size for the logits.
        vocab_size=rows,
        output_vocab_size=_output_vocab(raw, rows),
        d_model=int(_field(raw, "hidden_size", "d_model")),
        n_layers=int(_field(raw, "num_hidden_layers", "n_layers")),
        n_heads=n_heads,
        n_kv_heads=int(_field(raw, "num_key_value_heads", "n_kv_heads", default=n_heads)),
        intermediate_size=(
            _expert_width(state, n_experts) if n_experts else int(raw["intermediate_size"]) // 2
        ),  # dense configs store the fused up+gate width
        n_experts=n_experts,
        experts_per_token=int(raw["moe_top_k"]) if n_experts else 0,
        rope_theta=float(_field(raw, "rope_theta", default=10000.0)),
        norm_eps=float(_field(raw, "layer_norm_eps", default=1e-5)),
        max_position_embeddings=int(
            _field(raw, "max_position_embeddings", "max_sequence_length", default=4096)
        ),
        tie_embeddings=_HEAD not in state,  # the config has two flags that may disagree
    )


def molmo_0924_config(
    folder: Path, raw: dict[str, Any], state: dict[str, torch.Tensor], base: MolmoConfig
) -> MolmoConfig:
    """Our config for an official folder: LLM shapes from its config.json (`raw`) and weights,
    vision/connector/preprocessing from `base` (the official ones are fixed CLIP-336
    settings), projector width from the weights, legacy mask order on, tokenizer from the
    folder with the image-token ids its tokenizer assigns (looked up by string)."""
    _refuse_unsupported(raw)
    llm = _llm_config(raw, state)
    hidden = state["model.vision_backbone.image_projector.w1.weight"].shape[0]
    connector = dataclasses.replace(base.connector, mlp_hidden=hidden, legacy_pad_mask_shift=True)
    tokenizer = TokenizerConfig(
        kind="hf",
        path=str(folder),
        base_vocab_size=llm.vocab_size,
        image_token_ids=_official_image_ids(folder),
    )
    return dataclasses.replace(
        base, name=folder.name, llm=llm, connector=connector, tokenizer=tokenizer
    )


def _official_image_ids(folder: Path) -> ImageTokenIds:
    """The image-token ids of an official folder's tokenizer; it must define all four."""
    hf = load_hf_tokenizer(TokenizerConfig(kind="hf", path=str(folder)))
    ids = image_token_ids_of(hf)
    if ids is None:
        raise ValueError(
            f"the tokenizer in {folder} defines none of the image tokens "
            f"{sorted(IMAGE_TOKEN_STRINGS.values())}; is this a Molmo checkpoint?"
        )
    return ids


# Attention parts and norms sit directly on the block in the dense and megablocks layouts and
# one level down (`attn.` / `mlp.`) in the per-expert MolmoE layout.
_WRAPPED_PART = re.compile(
    r"^(?:attn|mlp)\.(?=(?:att_proj|attn_out|attn_norm|ff_norm|[qk]_norm)\.)"
)


def _block_parts(state: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Decoder tensors grouped by block, named relative to the block, wrappers removed."""
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := re.fullmatch(r"model\.transformer\.blocks\.(\d+)\.(.+)", key):
            blocks.setdefault(int(m[1]), {})[_WRAPPED_PART.sub("", m[2], count=1)] = value
    return blocks


def _map_experts(parts: dict[str, torch.Tensor], llm: LLMConfig) -> dict[str, torch.Tensor]:
    """Expert weights of one block -> transformers' fused OlmoeExperts tensors.

    Two layouts are published (README.md): megablocks dMoE keeps every role in one
    [E*I, d] tensor, expert e owning rows e*I..(e+1)*I, with w1 = gate, v1 = up and
    w2 = down transposed; the per-expert layout has `experts.{e}.{gate,up,down}_proj`
    Linear weights. Ours: gate_up_proj [E, 2I, d] (gate rows first), down_proj [E, d, I].
    """
    e, i = llm.n_experts, llm.intermediate_size
    if "ffn.experts.mlp.w1" in parts:
        gate, up, down_t = (
            parts.pop(f"ffn.experts.mlp.{role}").reshape(e, i, -1) for role in ("w1", "v1", "w2")
        )  # each [E, I, d]
        down = down_t.transpose(1, 2)  # [E, d, I]
    else:
        gate, up, down = (
            torch.stack([parts.pop(f"mlp.experts.{x}.{role}_proj.weight") for x in range(e)])
            for role in ("gate", "up", "down")
        )  # [E, I, d], [E, I, d], [E, d, I]
    return {
        "mlp.experts.gate_up_proj": torch.cat([gate, up], dim=1).contiguous(),
        "mlp.experts.down_proj": down.contiguous(),
    }


def _map_block(parts: dict[str, torch.Tensor], cfg: MolmoConfig) -> dict[str, torch.Tensor]:
    """One decoder block's tensors (consumed from `parts`) in our names, block-relative."""
    llm, hd = cfg.llm, cfg.llm.head_dim
    norms = (
        ("post_attention_layernorm", "post_feedforward_layernorm")
        if llm.arch == "olmo2"  # norm_after: the norms act on the block outputs
        else ("input_layernorm", "post_attention_layernorm")
    )
    renames = {
        "attn_out.weight": "self_attn.o_proj.weight",
        "attn_norm.weight": f"{norms[0]}.weight",
        "ff_norm.weight": f"{norms[1]}.weight",
        "q_norm.weight": "self_attn.q_norm.weight",
        "k_norm.weight": "self_attn.k_norm.weight",
        "ff_out.weight": "mlp.down_proj.weight",
        "ffn.router.layer.weight": "mlp.gate.weight",  # megablocks router [E, d]
        "mlp.gate.weight": "mlp.gate.weight",  # per-expert layout router [E, d]
    }
    out = {ours: parts.pop(theirs) for theirs, ours in renames.items() if theirs in parts}
    qkv = [llm.n_heads * hd, llm.n_kv_heads * hd, llm.n_kv_heads * hd]
    for kind in ("weight", "bias"):
        if (fused := parts.pop(f"att_proj.{kind}", None)) is not None:
            for proj, t in zip("qkv", torch.split(fused, qkv, dim=0), strict=True):
                out[f"self_attn.{proj}_proj.{kind}"] = t
    if (ff_proj := parts.pop("ff_proj.weight", None)) is not None:  # cat[up, gate] rows
        out["mlp.up_proj.weight"], out["mlp.gate_proj.weight"] = ff_proj.chunk(2, dim=0)
    if llm.n_experts:
        out.update(_map_experts(parts, llm))
    if parts:
        raise KeyError(f"unmapped Molmo-0924 block tensors {sorted(parts)}")
    return out


def _interleaved_to_half_rope(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the per-head rows of a q/k projection (or its bias / norm weight) from
    rotary pairs (2j, 2j+1) to transformers' pairs (j, j + head_dim/2); q.k is unchanged."""
    rows = t.reshape(n_heads, -1, 2, t[0].numel())  # [heads, head_dim/2, 2, in]
    return rows.transpose(1, 2).reshape(t.shape)


def map_molmo_0924(
    state: dict[str, torch.Tensor], cfg: MolmoConfig, *, interleaved_rope: bool = False
) -> dict[str, torch.Tensor]:
    """Rename, split and stack official 0924 tensors into our state-dict layout.

    `interleaved_rope`: the config says `rope_impl: cockatoo` (rotary on adjacent pairs).
    """
    out: dict[str, torch.Tensor] = {}
    heads = {"q": cfg.llm.n_heads, "k": cfg.llm.n_kv_heads}
    for layer, parts in _block_parts(state).items():
        block = _map_block(parts, cfg)
        if interleaved_rope:
            for name in list(block):
                if m := re.fullmatch(r"self_attn\.([qk])_(?:proj|norm)\.(?:weight|bias)", name):
                    block[name] = _interleaved_to_half_rope(block[name], heads[m[1]])
        out.update({f"llm.layers.{layer}.{k}": v for k, v in block.items()})
    for key, value in state.items():
        if not key.startswith("model.transformer.blocks."):
            out.update(_map_other(key.removeprefix("model."), value, cfg))
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
    if name == "transformer.ff_out.weight":  # the real text rows; padding rows are dropped
        return {"lm_head.weight": value[: cfg.llm.n_logits]}
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
    raw = json.loads((folder / CONFIG_FILE).read_text())
    state = read_safetensors_folder(folder)
    config = molmo_0924_config(folder, raw, state, base or MolmoConfig(name="molmo-0924"))
    model = MolmoModel(config)
    interleaved = raw.get("rope_impl") == "cockatoo"
    model.load_state_dict(map_molmo_0924(state, config, interleaved_rope=interleaved), strict=True)
    return _bundle(model.to(device).eval(), config)
