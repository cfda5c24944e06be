"""The text LLM mode of the model server (`python -m model_service.serve --llm`) with the
real SmolLM2-135M-Instruct: protocol, streaming, bad requests, concurrency, and where its
weights come from (a folder, or a GGUF file converted once and cached)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from model_service.serve.llm_files import CACHE_FORMAT, resolve_model_dir
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
        (chat_body("x", stream="yes"), 400, "stream"),
        (
            json.dumps(
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "image_url",
                                    "image_url": {"url": "data:image/png;base64,AAAA"},
                                }
                            ],
                        }
                    ]
                }
            ).encode(),
            400,
            "reads text only",
        ),
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


@pytest.mark.slow
def test_streaming_matches_the_whole_answer(local_llm: str) -> None:
    client = openai.OpenAI(base_url=local_llm, api_key="local", max_retries=0)
    messages = [{"role": "user", "content": "Name three fruits."}]
    whole = client.chat.completions.create(
        model=LOCAL_MODEL_NAME, messages=messages, temperature=0, max_tokens=12
    )
    stream = client.chat.completions.create(
        model=LOCAL_MODEL_NAME, messages=messages, temperature=0, max_tokens=12, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


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


def test_the_default_cache_is_the_repository_var_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_service.serve.llm_files import default_cache_dir

    monkeypatch.delenv("LLM_CACHE_DIR", raising=False)
    monkeypatch.delenv("PIXMO_VAR_DIR", raising=False)
    assert default_cache_dir() == Path(__file__).resolve().parents[2] / "var" / "llm-cache"
    monkeypatch.setenv("PIXMO_VAR_DIR", "/srv/pixmo")
    assert default_cache_dir() == Path("/srv/pixmo/llm-cache")
