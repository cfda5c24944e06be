"""Continuous batching for every model the service runs (Molmo, the text LLM, HF VLMs).

One worker thread owns the model. Between two decoding steps it admits waiting jobs
(their prompts are prefilled together and their KV caches join the running batch,
left-padded to a common length) and retires finished ones (their rows and any columns
that only padded them leave the cache). So a request that arrives while others are
generating starts at the next step instead of waiting for them, and every running
request shares each forward pass.

Each row samples with its own temperature and top-p, so requests with different
settings share a batch. The waiting line is bounded (`QueueFull` -> HTTP 503 with
Retry-After), every job may carry a deadline (`JobTimeout` -> HTTP 504) and a streaming
job receives its text as it grows (stop strings are held back until they cannot match).

The model side is a `Backend`: `prefill(jobs)` and `step(state, tokens)` return the
next-token logits of each row; `DecodeState` holds the attention mask, positions and
cache of the running rows.

This module must not import annotator_app.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

log = logging.getLogger("pixmo.serve")


class QueueFull(Exception):
    """The waiting line is full; `retry_after` is a guess in seconds."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"the server is busy ({waiting} requests waiting); retry later")
        self.retry_after = retry_after


class JobTimeout(Exception):
    """The job did not finish before its deadline."""


class EngineClosed(Exception):
    """The engine shut down before the job ran."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length"


@dataclass
class Job:
    """One request as the engine sees it. `prompt` is whatever the backend prepared."""

    prompt: Any
    prompt_tokens: int
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    deadline: float | None = None  # time.monotonic() after which the job is dropped
    stream: queue.Queue[str | None] | None = None  # text deltas, then None
    # Set by the engine:
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    error: BaseException | None = None
    cancelled: bool = False  # set by the caller (a client that went away)
    started: float = 0.0  # time.monotonic() when admitted to the batch


@dataclass
class DecodeState:
    """The running rows: mask [B, T] (1 real, 0 left padding) over cached columns, the
    position of each row's last token [B, 1], the token each row feeds next [B], and the
    backend's KV cache (a transformers DynamicCache, keys/values [B, heads, T, dim])."""

    mask: torch.Tensor
    positions: torch.Tensor
    last: torch.Tensor
    cache: Any


class Backend(Protocol):
    """What the engine needs from a model."""

    eos_ids: frozenset[int]
    banned_ids: list[int]  # never sampled (e.g. image tokens inside the vocabulary)

    def prefill(self, jobs: list[Job]) -> tuple[DecodeState, torch.Tensor]:
        """Run the prompts; the state (`last` unset) and last-position logits [B, V]."""
        ...

    def step(self, state: DecodeState) -> tuple[DecodeState, torch.Tensor]:
        """Feed `state.last`; the advanced state and the logits [B, V]."""
        ...

    def decode(self, ids: list[int]) -> str: ...


# --- cache surgery shared by the backends ---------------------------------------------------


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def merge_states(running: DecodeState | None, added: DecodeState) -> DecodeState:
    """One batch from two: the narrower side's mask and cache are padded on the left."""
    if running is None:
        return added
    width = max(running.mask.shape[1], added.mask.shape[1])
    for old, new in zip(running.cache.layers, added.cache.layers, strict=True):
        old.keys = torch.cat([_left_pad(old.keys, width, 2), _left_pad(new.keys, width, 2)])
        old.values = torch.cat([_left_pad(old.values, width, 2), _left_pad(new.values, width, 2)])
    return DecodeState(
        torch.cat([_left_pad(running.mask, width, 1), _left_pad(added.mask, width, 1)]),
        torch.cat([running.positions, added.positions]),
        torch.cat([running.last, added.last]),
        running.cache,
    )


def select_rows(state: DecodeState, keep: list[int]) -> DecodeState:
    """Only the rows `keep`, and without the columns that padded nothing but dropped rows."""
    if len(keep) < state.mask.shape[0]:
        index = torch.tensor(keep, dtype=torch.long, device=state.mask.device)
        for layer in state.cache.layers:
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        state = DecodeState(
            state.mask[index], state.positions[index], state.last[index], state.cache
        )
    start = int((state.mask.sum(0) > 0).nonzero()[0])
    if start > 0:
        for layer in state.cache.layers:
            layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
        state = DecodeState(state.mask[:, start:], state.positions, state.last, state.cache)
    return state


def pick_tokens(
    logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, banned: list[int]
) -> torch.Tensor:
    """Next token per row [B]: argmax where temperature is 0, else nucleus sampling with
    the row's own temperature and top-p (the smallest prefix of the sorted distribution
    whose mass reaches top_p, always at least the first token)."""
    logits = logits.float()
    if banned:
        logits = logits.index_fill(-1, torch.tensor(banned, device=logits.device), -math.inf)
    greedy = logits.argmax(-1)
    if bool((temperature == 0).all()):
        return greedy
    probs = torch.softmax(logits / temperature.clamp(min=1e-4)[:, None], dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs > top_p[:, None]
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    sampled = torch.multinomial(probs, 1).squeeze(-1)
    return torch.where(temperature == 0, greedy, sampled)


# --- text of a running row -----------------------------------------------------------------


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters might still become a stop string (or finish a
    multi-byte character that decodes as U+FFFD for now)."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    while hold < len(text) and text[len(text) - 1 - hold] == "\ufffd":
        hold += 1
    return hold


@dataclass
class _Row:
    job: Job
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: str = ""  # what the stream has received
    finish: str = ""  # "stop", "length", "timeout", "cancelled"

    def update_text(self, backend: Backend) -> None:
        """Decode, cut at the first stop string, and stream what can no longer change."""
        job = self.job
        if not (job.stop or job.stream is not None):
            return
        self.text = backend.decode(self.ids)
        cuts = [self.text.find(s) for s in job.stop if s and s in self.text]
        if cuts:
            self.text, self.finish = self.text[: min(cuts)], "stop"
        if job.stream is not None:
            ready = self.text
            if not self.finish:
                ready = ready[: len(ready) - _held_back(ready, job.stop)]
            if ready.startswith(self.sent) and len(ready) > len(self.sent):
                job.stream.put(ready[len(self.sent) :])
                self.sent = ready


# --- the engine ----------------------------------------------------------------------------


class Engine:
    """The worker thread and its waiting line; see the module docstring."""

    def __init__(self, backend: Backend, *, max_batch: int = 8, max_queue: int = 64) -> None:
        if max_batch < 1 or max_queue < 0:
            raise ValueError("max_batch must be >= 1 and max_queue >= 0")
        self.backend = backend
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._running = 0
        self._job_seconds = 1.0  # moving average, for Retry-After
        self.stats = {"requests": 0, "batches": 0, "largest_batch": 0, "tokens": 0, "rejected": 0}
        self._thread = threading.Thread(target=self._loop, name="serve-engine", daemon=True)

    # -- callers' side --

    def start(self) -> Engine:
        self._thread.start()
        return self

    def submit(self, job: Job) -> None:
        """Queue `job` without waiting; QueueFull when the waiting line is full."""
        with self._cond:
            if self._closing:
                raise EngineClosed("the server is shutting down")
            free_slots = max(0, self.max_batch - self._running)
            if len(self._waiting) >= self.max_queue + free_slots:
                self.stats["rejected"] += 1
                raise QueueFull(len(self._waiting), self.retry_after())
            self._waiting.append(job)
            self._cond.notify()

    def wait(self, job: Job) -> Generation:
        """Block until `job` is finished; its deadline bounds the wait."""
        timeout = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
        if not job.done.wait(timeout if timeout is None else timeout + 1.0):
            job.cancelled = True
            raise JobTimeout("the request timed out")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def generate(self, job: Job) -> Generation:
        self.submit(job)
        return self.wait(job)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the waiting line drained at the recent
        per-job time, a batch at a time."""
        batches = 1 + len(self._waiting) // self.max_batch
        return max(1, math.ceil(batches * self._job_seconds))

    def load(self) -> dict[str, int]:
        with self._cond:
            return {"running": self._running, "waiting": len(self._waiting)}

    def close(self) -> None:
        """Finish the running jobs, refuse the waiting ones, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            if not self._thread.is_alive():  # never started: nobody else will answer them
                for job in self._waiting:
                    _fail(job, EngineClosed("the server shut down before this request ran"))
                self._waiting.clear()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    # -- the worker thread --

    def _admit(self, room: int, idle: bool) -> list[Job]:
        with self._cond:
            while idle and not self._waiting and not self._closing:
                self._cond.wait()
            if self._closing:
                dropped = list(self._waiting)
                self._waiting.clear()
                for job in dropped:
                    _fail(job, EngineClosed("the server shut down before this request ran"))
                return []
            taken: list[Job] = []
            while self._waiting and len(taken) < room:
                job = self._waiting.popleft()
                if job.cancelled:
                    _fail(job, EngineClosed("cancelled"))
                elif job.deadline is not None and time.monotonic() > job.deadline:
                    _fail(job, JobTimeout("the request timed out while waiting"))
                else:
                    job.started = time.monotonic()
                    taken.append(job)
            self._running += len(taken)
            return taken

    def _loop(self) -> None:
        rows: list[_Row] = []
        state: DecodeState | None = None
        while True:
            incoming = self._admit(self.max_batch - len(rows), idle=not rows)
            if not rows and not incoming:
                if self._closing:
                    return
                continue
            try:
                if incoming:
                    self.stats["requests"] += len(incoming)
                    self.stats["batches"] += 0 if rows else 1
                    added, logits = self.backend.prefill(incoming)
                    new_rows = [_Row(job) for job in incoming]
                    added.last = self._pick(logits, new_rows)
                    self._accept(new_rows, added.last)
                    rows, state = rows + new_rows, merge_states(state, added)
                else:
                    assert state is not None
                    state, logits = self.backend.step(state)
                    state.last = self._pick(logits, rows)
                    self._accept(rows, state.last)
                self.stats["largest_batch"] = max(self.stats["largest_batch"], len(rows))
                rows, state = self._retire(rows, state)
            except BaseException as exc:
                log.exception("generation failed for %d requests", len(rows) + len(incoming))
                jobs = [r.job for r in rows] + incoming
                for job in jobs:
                    _fail(job, exc)
                with self._cond:
                    self._running -= len({id(j) for j in jobs})
                rows, state = [], None

    def _pick(self, logits: torch.Tensor, rows: list[_Row]) -> torch.Tensor:
        device = logits.device
        temperature = torch.tensor([r.job.temperature for r in rows], device=device)
        top_p = torch.tensor([r.job.top_p for r in rows], device=device)
        return pick_tokens(logits, temperature, top_p, self.backend.banned_ids)

    def _accept(self, rows: list[_Row], tokens: torch.Tensor) -> None:
        now = time.monotonic()
        for row, token in zip(rows, tokens.tolist(), strict=True):
            job = row.job
            if row.finish:
                continue
            if job.cancelled:
                row.finish = "cancelled"
            elif job.deadline is not None and now > job.deadline:
                row.finish = "timeout"
            elif token in self.backend.eos_ids:
                row.finish = "stop"
            else:
                row.ids.append(int(token))
                self.stats["tokens"] += 1
                row.update_text(self.backend)
                if not row.finish and len(row.ids) >= job.max_tokens:
                    row.finish = "length"

    def _retire(
        self, rows: list[_Row], state: DecodeState | None
    ) -> tuple[list[_Row], DecodeState | None]:
        """Answer the finished rows and drop them from the batch."""
        finished = [r for r in rows if r.finish]
        for row in finished:
            self._finish(row)
        if finished:
            with self._cond:
                self._running -= len(finished)
        keep = [i for i, row in enumerate(rows) if not row.finish]
        if not keep:
            return [], None
        assert state is not None
        return [rows[i] for i in keep], select_rows(state, keep)

    def _finish(self, row: _Row) -> None:
        job = row.job
        if row.finish == "timeout":
            _fail(job, JobTimeout("the request timed out"))
            return
        if row.finish == "cancelled":
            _fail(job, EngineClosed("cancelled"))
            return
        if not (job.stop or job.stream is not None):
            row.text = self.backend.decode(row.ids)
        if job.stream is not None and row.text != row.sent and row.text.startswith(row.sent):
            job.stream.put(row.text[len(row.sent) :])
        job.result = Generation(row.text, job.prompt_tokens, len(row.ids), row.finish)
        if job.stream is not None:
            job.stream.put(None)
        job.done.set()
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * (time.monotonic() - job.started)


def _fail(job: Job, error: BaseException) -> None:
    if job.done.is_set():
        return
    job.error = error
    if job.stream is not None:
        job.stream.put(None)
    job.done.set()
