"""Progress of the model load, so the server can answer while it loads.

The server binds its port first and loads the model in a background thread; until the
model is ready `GET /health` answers 503 with the stage and progress kept here (and
`Retry-After`), and chat requests answer 503. The first start of the local LLM converts a
GGUF file, which took from half a minute to several minutes on 2 shared cores; its
tensors are counted as they are dequantised.

This module must not import annotator_app.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("pixmo.serve")

# Stages reported by /health while loading (the launcher and the capture page show them).
STARTING = "starting"
ASSEMBLING = "assembling the model file"
# The one-time GGUF conversion: the tokenizer's rebuild and the file's parsing take most
# of it (about 80 of 95 s in a trial at load average 20), the tensors a few seconds.
CONVERTING_TOKENIZER = "converting GGUF (one-time): tokenizer"
CONVERTING_READING = "converting GGUF (one-time): reading the file"
CONVERTING = "converting GGUF (one-time): weights"
WRITING = "converting GGUF (one-time): writing safetensors"
LOADING = "loading the weights"


class LoadProgress:
    """Thread-safe stage and counts of an ongoing load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stage = STARTING
        self._done = 0
        self._total = 0
        self._unit = ""

    def stage(self, name: str, *, total: int = 0, unit: str = "") -> None:
        """Enter stage `name`; `total` items of `unit` are counted with `advance`."""
        with self._lock:
            self._stage, self._done, self._total, self._unit = name, 0, total, unit
            elapsed = time.monotonic() - self._started
        counted = f" ({total} {unit})" if total else ""
        log.info("loading: %s%s at %.0f s", name, counted, elapsed)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._done = min(self._done + n, self._total) if self._total else self._done + n

    def snapshot(self) -> dict[str, Any]:
        """The /health body fields: stage, done, total, unit, elapsed_seconds."""
        with self._lock:
            return {
                "stage": self._stage,
                "done": self._done,
                "total": self._total,
                "unit": self._unit,
                "elapsed_seconds": round(time.monotonic() - self._started, 1),
            }


@contextlib.contextmanager
def counting_gguf_tensors(progress: LoadProgress | None) -> Iterator[None]:
    """Count the tensors transformers dequantises while loading a GGUF file.

    transformers wraps that loop in `tqdm(reader.tensors, ...)` inside
    `modeling_gguf_pytorch_utils`; for the duration of the block that name is replaced by
    a counter feeding `progress`. Should a later transformers rename it, the load works
    the same and only the counts stay at zero.
    """
    if progress is None:
        yield
        return
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)

    def counted(items: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        listed = list(items)
        progress.stage(CONVERTING, total=len(listed), unit="tensors")
        for item in listed:
            yield item
            progress.advance()

    if original is None:
        yield
        return
    gguf_utils.tqdm = counted
    try:
        yield
    finally:
        gguf_utils.tqdm = original
