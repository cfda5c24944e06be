"""The backend for our Molmo: a native checkpoint from the trainer or an official
Molmo-0924 folder (model_service.checkpoint.load reads both).

Prompts follow the SFT chat format the trainer teaches (PIXMO_SPEC.md §3): BOS, then the
image tokens (global crop, then the high-res grid), then for every user turn
`` User: {text} Assistant:`` and for every earlier assistant turn `` {text}`` + EOS.
A system message is put in front of the first user turn's text. Molmo-0924 reads one
image, placed before all text wherever it appeared in the conversation.

Admitted prompts are prefilled together (their crops through the ViT in one batch);
decoding then runs MolmoModel.forward one token at a time against the shared cache.

This module must not import annotator_app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_service import checkpoint, data
from model_service.config import MolmoConfig
from model_service.model import left_align
from model_service.preprocess import to_rgb_array
from model_service.serve.engine import DecodeState, Job
from model_service.serve.hf_backends import resolve_device
from model_service.serve.protocol import BadRequest, ChatRequest, Turn
from pipelines import molmo_text


def _merged_turns(turns: list[Turn]) -> tuple[str, list[Turn]]:
    """System text apart; consecutive user (or assistant) messages joined into one."""
    system = "\n".join(t.text for t in turns if t.role == "system" and t.text)
    merged: list[Turn] = []
    for turn in turns:
        if turn.role == "system":
            continue
        if merged and merged[-1].role == turn.role:
            merged[-1] = Turn(turn.role, f"{merged[-1].text}\n{turn.text}".strip())
        else:
            merged.append(Turn(turn.role, turn.text))
    return system, merged


class MolmoBackend:
    """MolmoModel behind the engine; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        base: MolmoConfig | None = None,
    ) -> None:
        """`base`: vision, connector and preprocessing settings for an official Molmo-0924
        folder (default: the CLIP ViT-L/14-336 ones of every release); native checkpoints
        carry their own in config.json."""
        self.device, torch_dtype = resolve_device(device, dtype)
        loaded = checkpoint.load(folder, device="cpu", base=base)
        self.config = loaded.config
        self.model = loaded.model.to(self.device, torch_dtype).eval()
        self.tokenizer = loaded.tokenizer
        self.preprocessor = loaded.preprocessor
        self.eos_ids = frozenset({int(self.tokenizer.eos_id)})
        self.banned_ids = self.model.banned_ids()
        self.context_length = self.config.llm.max_position_embeddings
        self.max_images = 1

    # -- prompts --

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """The text after the image prefix, in the SFT chat format."""
        system, turns = _merged_turns(request.turns)
        tok = self.tokenizer
        ids: list[int] = []
        for i, turn in enumerate(turns):
            if turn.role == "user":
                text = f"{system}\n{turn.text}" if system and i == 0 else turn.text
                ids += tok.encode(molmo_text.chat_prompt(text))
            else:
                ids += [*tok.encode(" " + turn.text), tok.eos_id]
        return ids

    def prepare(self, request: ChatRequest, max_tokens: int) -> tuple[dict[str, np.ndarray], int]:
        """The packed prompt item (the data module's layout, labels all ignored) and its
        length."""
        images = request.images
        if len(images) > self.max_images:
            raise BadRequest(
                f"this model takes at most {self.max_images} image per request", param="messages"
            )
        text = self.prompt_ids(request)
        if images:
            assert images[0].image is not None, "images are loaded before prepare"
            inputs = self.preprocessor(to_rgb_array(images[0].image))
            segment = data.Segment()
            segment.add(text, False)
            length = 1 + len(inputs.tokens) + len(text)
            self._check_length(length, max_tokens)
            item = data.pack(self.tokenizer, inputs, [segment], seq_len=length)
        else:
            ids = [self.tokenizer.bos_id, *text]
            length = len(ids)
            self._check_length(length, max_tokens)
            item = {
                "input_ids": np.asarray(ids, dtype=np.int64),
                "position_ids": np.arange(length, dtype=np.int64),
                "segment_ids": np.asarray([0] + [1] * len(text), dtype=np.int64),
                "labels": np.full(length, data.IGNORE_INDEX, dtype=np.int64),
            }
        return item, length

    def _check_length(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_length:
            raise BadRequest(
                f"prompt ({prompt_tokens} tokens, image included) plus max_tokens ({max_tokens})"
                f" exceeds the context length of {self.context_length}",
                param="max_tokens",
            )

    def _batch(self, items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        """Collate; a text-only prompt next to image prompts gets one absent crop."""
        with_image = [it for it in items if "images" in it]
        if with_image and len(with_image) < len(items):
            first = with_image[0]
            items = [
                it if "images" in it else {
                    **it,
                    "images": np.zeros((1, *first["images"].shape[1:]), np.float32),
                    "image_masks": np.full((1, first["image_masks"].shape[1]), -1.0, np.float32),
                    "image_input_idx": np.full((1, first["image_input_idx"].shape[1]), -1),
                }
                for it in items
            ]  # fmt: skip
        batch = data.collate(items, pad_id=self.tokenizer.pad_id)
        batch.pop("labels", None)
        dtype = next(self.model.parameters()).dtype
        return {
            k: v.to(self.device, dtype if v.is_floating_point() else None)
            for k, v in left_align(batch).items()
        }

    # -- the engine's side --

    def prefill(self, jobs: list[Job]) -> tuple[DecodeState, torch.Tensor]:
        from transformers import DynamicCache

        batch = self._batch([job.prompt for job in jobs])
        cache = DynamicCache(config=self.model.hf_config)
        with torch.inference_mode():
            logits = self.model(**batch, cache=cache)[:, -1]
        mask = (batch["segment_ids"] >= 0).long()
        positions = batch["position_ids"][:, -1:]
        return DecodeState(mask, positions, batch["input_ids"][:, -1], cache), logits

    def step(self, state: DecodeState) -> tuple[DecodeState, torch.Tensor]:
        mask = torch.cat([state.mask, torch.ones_like(state.mask[:, :1])], dim=1)
        positions = state.positions + 1
        # Every real key is visible to the new token (prefix and prompt alike), padding not.
        keys = torch.where(mask > 0, 0, -1)
        query_segment = torch.ones_like(positions)
        with torch.inference_mode():
            logits = self.model(
                state.last[:, None],
                positions,
                query_segment,
                cache=state.cache,
                key_segment_ids=keys,
            )[:, -1]
        return DecodeState(mask, positions, state.last, state.cache), logits

    def decode(self, ids: list[int]) -> str:
        # Answers are trained as " {answer}": the format's leading space is not content.
        text = self.tokenizer.decode(ids)
        return text[1:] if text.startswith(" ") else text

    def describe(self) -> dict[str, Any]:
        return {"kind": "molmo", "name": self.config.name, "device": str(self.device)}
