"""The serving engine (model_service/serve/engine.py) on a tiny random Llama: continuous
batching that does not change any row's tokens, per-row sampling, the bounded waiting
line, deadlines, cancellation, stop strings and streaming."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch

from model_service.serve.engine import (
    DecodeState,
    Engine,
    EngineClosed,
    Generation,
    Job,
    JobTimeout,
    QueueFull,
    pick_tokens,
)
from model_service.serve.hf_backends import TextBackend

EOS = 63


class DigitsTokenizer:
    """Decodes ids as space-separated numbers; enough for the engine."""

    eos_token_id = EOS
    pad_token_id = 0
    chat_template = "unused"

    def decode(self, ids: list[int], **_: Any) -> str:
        return " ".join(str(i) for i in ids)


@pytest.fixture(scope="module")
def backend() -> TextBackend:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    return TextBackend(LlamaForCausalLM(config), DigitsTokenizer())


class Hooked:
    """A backend wrapper that runs `on_step` once, before its first decoding step."""

    def __init__(self, inner: TextBackend) -> None:
        self.inner = inner
        self.eos_ids = inner.eos_ids
        self.banned_ids = inner.banned_ids
        self.on_step: Callable[[], None] | None = None
        self.prefilled: list[int] = []

    def prefill(self, jobs: list[Job]) -> tuple[DecodeState, torch.Tensor]:
        self.prefilled.append(len(jobs))
        return self.inner.prefill(jobs)

    def step(self, state: DecodeState) -> tuple[DecodeState, torch.Tensor]:
        hook, self.on_step = self.on_step, None
        if hook is not None:
            hook()
        return self.inner.step(state)

    def decode(self, ids: list[int]) -> str:
        return self.inner.decode(ids)


def job(prompt: list[int], max_tokens: int, **extra: Any) -> Job:
    return Job(prompt=prompt, prompt_tokens=len(prompt), max_tokens=max_tokens, **extra)


PROMPT_A = [5, 9, 17, 3, 44, 21, 8, 30, 12]
PROMPT_B = [7, 2, 50]


def solo(backend: TextBackend, prompt: list[int], max_tokens: int) -> Generation:
    engine = Engine(backend).start()
    try:
        return engine.generate(job(prompt, max_tokens))
    finally:
        engine.close()


def test_a_request_joining_a_running_batch_decodes_as_if_alone(backend: TextBackend) -> None:
    alone_a, alone_b = solo(backend, PROMPT_A, 12), solo(backend, PROMPT_B, 5)
    hooked = Hooked(backend)
    engine = Engine(hooked).start()
    late = job(PROMPT_B, 5)
    hooked.on_step = lambda: engine.submit(late)  # B arrives while A is decoding
    together_a = engine.generate(job(PROMPT_A, 12))
    together_b = engine.wait(late)
    engine.close()
    # B joined after A's first step (shorter prompt, so left-padded), finished first and
    # left; A went on alone. Both match their solo decoding token for token.
    assert (together_a.text, together_b.text) == (alone_a.text, alone_b.text)
    assert (together_a.completion_tokens, together_b.completion_tokens) == (12, 5)
    assert together_a.finish_reason == together_b.finish_reason == "length"
    assert hooked.prefilled == [1, 1]
    assert engine.stats["batches"] == 1 and engine.stats["largest_batch"] == 2


def test_greedy_and_sampled_rows_share_a_batch(backend: TextBackend) -> None:
    alone = solo(backend, PROMPT_A, 10)
    hooked = Hooked(backend)
    engine = Engine(hooked).start()
    sampled = job(PROMPT_B, 6, temperature=1.5, top_p=0.9)
    hooked.on_step = lambda: engine.submit(sampled)
    greedy = engine.generate(job(PROMPT_A, 10))
    engine.wait(sampled)
    engine.close()
    assert greedy.text == alone.text  # the sampled neighbour changes nothing
    assert sampled.result is not None and sampled.result.completion_tokens == 6
    assert engine.stats["largest_batch"] == 2


def test_many_concurrent_requests_respect_max_batch(backend: TextBackend) -> None:
    engine = Engine(backend, max_batch=3).start()
    prompts = [[i + 1, i + 2, i + 3][: 1 + i % 3] for i in range(7)]
    with ThreadPoolExecutor(7) as pool:
        results = list(pool.map(lambda p: engine.generate(job(p, 4)), prompts))
    engine.close()
    assert [r.text for r in results] == [solo(backend, p, 4).text for p in prompts]
    assert engine.stats["requests"] == 7 and engine.stats["largest_batch"] <= 3


def test_a_failed_step_reports_the_error_to_each_request(backend: TextBackend) -> None:
    hooked = Hooked(backend)

    def boom() -> None:
        raise RuntimeError("out of memory")

    hooked.on_step = boom
    engine = Engine(hooked).start()
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            engine.generate(job(PROMPT_A, 3))
        # The engine keeps serving after a failure.
        assert engine.generate(job(PROMPT_A, 2)).completion_tokens == 2
        assert engine.load() == {"running": 0, "waiting": 0}
    finally:
        engine.close()


def test_a_full_waiting_line_is_refused_with_a_retry_hint(backend: TextBackend) -> None:
    engine = Engine(backend, max_batch=1, max_queue=1)  # not started: nothing drains
    first, second = job(PROMPT_A, 2), job(PROMPT_B, 2)
    engine.submit(first)  # takes the free batch slot at the next step
    engine.submit(second)  # waits
    with pytest.raises(QueueFull) as refused:
        engine.submit(job(PROMPT_B, 2))
    assert refused.value.retry_after >= 1 and "busy" in str(refused.value)
    assert engine.stats["rejected"] == 1
    engine.start()
    assert engine.wait(first).completion_tokens == engine.wait(second).completion_tokens == 2
    engine.close()


def test_deadlines_and_cancellation(backend: TextBackend) -> None:
    hooked = Hooked(backend)
    engine = Engine(hooked)
    expired = job(PROMPT_A, 5, deadline=time.monotonic() - 1)
    cancelled = job(PROMPT_A, 5)
    cancelled.cancelled = True
    engine.submit(expired)
    engine.submit(cancelled)
    engine.start()
    with pytest.raises(JobTimeout):
        engine.wait(expired)
    with pytest.raises(EngineClosed, match="cancelled"):
        engine.wait(cancelled)
    # A running job whose deadline passes mid-generation stops at the next step.
    hooked.on_step = lambda: time.sleep(0.4)
    with pytest.raises(JobTimeout):
        engine.generate(job(PROMPT_A, 200, deadline=time.monotonic() + 0.2))
    assert engine.generate(job(PROMPT_B, 3)).completion_tokens == 3
    assert engine.load() == {"running": 0, "waiting": 0}
    engine.close()


def test_stop_strings_cut_the_text_and_never_reach_the_stream(backend: TextBackend) -> None:
    full = solo(backend, PROMPT_A, 12).text
    numbers = full.split(" ")
    # A stop string spanning two tokens, chosen to first appear as late as possible.
    stop = max((f" {a} {b}" for a, b in itertools.pairwise(numbers[1:])), key=full.find)
    assert full.find(stop) > len(numbers[0])
    engine = Engine(backend).start()
    stream: queue.Queue[str | None] = queue.Queue()
    result = engine.generate(job(PROMPT_A, 12, stop=[stop], stream=stream))
    engine.close()
    assert result.text == full[: full.find(stop)] and result.finish_reason == "stop"
    deltas = []
    while (delta := stream.get(timeout=5)) is not None:
        deltas.append(delta)
    assert len(deltas) > 1 and "".join(deltas) == result.text


def test_pick_tokens_per_row() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0], [9.0, 0.0, 8.0]])
    torch.manual_seed(0)
    temperature = torch.tensor([0.0, 1.0, 0.0])
    top_p = torch.tensor([1.0, 1e-6, 1.0])  # row 1: only the most likely token survives
    assert pick_tokens(logits, temperature, top_p, banned=[]).tolist() == [1, 1, 0]
    assert pick_tokens(logits, temperature, top_p, banned=[0, 1]).tolist() == [2, 2, 2]


def test_close_refuses_waiting_jobs(backend: TextBackend) -> None:
    engine = Engine(backend)
    waiting = job(PROMPT_A, 2)
    engine.submit(waiting)
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(5)
    with pytest.raises(EngineClosed):
        engine.wait(waiting)
    with pytest.raises(EngineClosed):
        engine.submit(job(PROMPT_A, 2))
