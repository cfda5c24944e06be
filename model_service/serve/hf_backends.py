"""Backends for models that transformers runs whole: a text LLM (`--llm`, SmolLM2 by
default) and an image-text-to-text folder (`--hf-model`, e.g. Molmo2).

Both decode the same way: one token per running row, the left-padded attention mask and
explicit positions telling each row where it is. They differ in the prompt: the text LLM
applies its tokenizer's chat template and prefills all admitted prompts in one forward;
the vision model runs its processor (image preprocessing, image tokens) and prefills
each prompt alone (processors differ in how they batch images), then joins the batch.

This module must not import annotator_app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from model_service.serve.engine import DecodeState, Job, merge_states
from model_service.serve.protocol import BadRequest, ChatRequest

log = logging.getLogger("pixmo.serve")


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """`auto` picks CUDA when present; `auto` dtype is bfloat16 on CUDA, float32 on CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if dtype == "auto":
        return target, torch.bfloat16 if target.type == "cuda" else torch.float32
    return target, {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        dtype
    ]


def _eos_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    eos: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            eos.add(source)
        elif isinstance(source, list):
            eos.update(int(i) for i in source)
    if not eos:
        raise ValueError("the model declares no end-of-sequence token")
    return frozenset(eos)


def _chat(request: ChatRequest, with_images: bool) -> list[dict[str, Any]]:
    """The conversation in the message format chat templates read."""
    messages: list[dict[str, Any]] = []
    for turn in request.turns:
        if not with_images:
            messages.append({"role": turn.role, "content": turn.text})
            continue
        parts: list[dict[str, Any]] = [{"type": "image"} for _ in turn.images]
        parts.append({"type": "text", "text": turn.text})
        messages.append({"role": turn.role, "content": parts})
    return messages


class HFBackend:
    """Shared decoding of a transformers model with a DynamicCache."""

    model: Any
    tokenizer: Any
    device: torch.device
    eos_ids: frozenset[int]
    banned_ids: list[int]
    context_length: int

    def step(self, state: DecodeState) -> tuple[DecodeState, torch.Tensor]:
        mask = torch.cat([state.mask, torch.ones_like(state.mask[:, :1])], dim=1)
        positions = state.positions + 1
        with torch.inference_mode():
            out = self.model(
                input_ids=state.last[:, None],
                attention_mask=mask,
                position_ids=positions,
                cache=state.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return DecodeState(mask, positions, state.last, out.cache), out.logits[:, -1, :]

    def decode(self, ids: list[int]) -> str:
        return str(
            self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def check_length(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_length:
            raise BadRequest(
                f"prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the "
                f"context length of {self.context_length}",
                param="max_tokens",
            )


class TextBackend(HFBackend):
    """A causal LM with a chat template; text content only. `from_folder` loads a saved
    folder; the constructor takes a model and tokenizer already in memory."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.eos_ids = _eos_ids(tokenizer, model)
        self.banned_ids = []
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else min(self.eos_ids)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))

    @classmethod
    def from_folder(cls, folder: Path, *, device: str = "cpu", dtype: str = "auto") -> TextBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target, torch_dtype = resolve_device(device, dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch_dtype, local_files_only=True
        )
        return cls(model.to(target), tokenizer)

    def prepare(self, request: ChatRequest, max_tokens: int) -> tuple[list[int], int]:
        if request.images:
            raise BadRequest(
                f"{request.images[0].where}: this model reads text only", param="messages"
            )
        encoded = self.tokenizer.apply_chat_template(
            _chat(request, with_images=False), add_generation_prompt=True, tokenize=True
        )
        if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
            encoded = encoded["input_ids"]
        ids = [int(i) for i in encoded]
        self.check_length(len(ids), max_tokens)
        return ids, len(ids)

    def prefill(self, jobs: list[Job]) -> tuple[DecodeState, torch.Tensor]:
        """All prompts in one forward, left-padded."""
        width = max(len(job.prompt) for job in jobs)
        ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            n = len(job.prompt)
            ids[row, width - n :] = torch.tensor(job.prompt, dtype=torch.long)
            mask[row, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
        state = DecodeState(mask, positions[:, -1:], ids[:, -1], out.cache)
        return state, out.logits[:, -1, :]


class VisionBackend(HFBackend):
    """A transformers image-text-to-text model with its processor and chat template.

    `from_folder` loads a saved folder (AutoProcessor + AutoModelForImageTextToText, local
    files only); the constructor takes the objects, so a caller holding a model already
    (a test, a notebook) serves it the same way. Any processor works whose
    `apply_chat_template` and `__call__(text=, images=)` behave as transformers' do."""

    def __init__(self, model: Any, processor: Any, *, max_images: int = 1) -> None:
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        if getattr(processor, "chat_template", None) is None:
            raise ValueError("the processor has no chat template")
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.eos_ids = _eos_ids(self.tokenizer, self.model)
        self.banned_ids = self._image_token_ids()
        text_config = self.model.config.get_text_config()
        self.context_length = int(getattr(text_config, "max_position_embeddings", 4096))
        self.max_images = max_images

    @classmethod
    def from_folder(
        cls, folder: Path, *, device: str = "auto", dtype: str = "auto"
    ) -> VisionBackend:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        target, torch_dtype = resolve_device(device, dtype)
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        model: Any = AutoModelForImageTextToText.from_pretrained(
            str(folder), dtype=torch_dtype, local_files_only=True
        )
        return cls(model.to(target), processor)

    def _image_token_ids(self) -> list[int]:
        """Image placeholder tokens the processor inserts: never to be generated."""
        ids = list(getattr(self.processor, "image_token_ids", None) or [])
        ids.append(getattr(self.processor, "image_token_id", None))
        unk = self.tokenizer.unk_token_id
        return sorted({int(i) for i in ids if isinstance(i, int) and i >= 0 and i != unk})

    def prepare(self, request: ChatRequest, max_tokens: int) -> tuple[dict[str, Any], int]:
        prompt = self.processor.apply_chat_template(
            _chat(request, with_images=True), add_generation_prompt=True, tokenize=False
        )
        images = [ref.image for ref in request.images]
        inputs = self.processor(text=prompt, images=images or None, return_tensors="pt")
        n = int(inputs["input_ids"].shape[1])
        self.check_length(n, max_tokens)
        return dict(inputs), n

    def prefill(self, jobs: list[Job]) -> tuple[DecodeState, torch.Tensor]:
        """Each prompt alone, then the caches join (left-padded)."""
        state: DecodeState | None = None
        logits = []
        for job in jobs:
            inputs = {
                k: v.to(self.device, self.dtype if v.is_floating_point() else None)
                for k, v in job.prompt.items()
            }
            with torch.inference_mode():
                out = self.model(**inputs, use_cache=True, logits_to_keep=1)
            n = inputs["input_ids"].shape[1]
            mask = torch.ones((1, n), dtype=torch.long, device=self.device)
            positions = torch.full((1, 1), n - 1, dtype=torch.long, device=self.device)
            added = DecodeState(mask, positions, inputs["input_ids"][:, -1], out.cache)
            state = merge_states(state, added)
            logits.append(out.logits[:, -1, :])
        assert state is not None
        return state, torch.cat(logits)
