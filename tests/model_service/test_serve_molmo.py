"""The real model server (`python -m model_service.serve --checkpoint`) on a debug
checkpoint the trainer taught four answers (tests/molmo_fixtures.py), driven by the
`openai` client as the platform drives it: captions and pointing answers that depend on
the image (sent as a data: URL or fetched over http), streaming, stop strings, text-only
prompts, eight requests at once, and errors the client sees as such."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from pipelines import molmo_text
from tests.molmo_fixtures import EXAMPLES, MolmoServer, draw_example, png_bytes, png_data_url

# The session's first use trains the debug checkpoint (cached afterwards): over 600 s on
# 2 loaded cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(molmo_server: MolmoServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=molmo_server.url, api_key="unused", timeout=120, max_retries=0)


def ask(client: openai.OpenAI, image_url: str, question: str, **extra: Any) -> Any:
    content = [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]
    options = {"temperature": 0, "max_tokens": 80, **extra}
    return client.chat.completions.create(
        model="molmo-debug", messages=[{"role": "user", "content": content}], **options
    )


def test_models_and_health(client: openai.OpenAI, molmo_server: MolmoServer) -> None:
    assert [m.id for m in client.models.list().data] == ["molmo-debug"]
    import json
    import urllib.request

    with urllib.request.urlopen(f"{molmo_server.base}/health", timeout=10) as response:
        health = json.load(response)
    assert health["status"] == "ok" and health["kind"] == "molmo"


@pytest.mark.parametrize(("kind", "question", "answer"), EXAMPLES)
def test_answers_depend_on_the_image(
    client: openai.OpenAI, kind: str, question: str, answer: str
) -> None:
    out = ask(client, png_data_url(draw_example(kind)), question)
    [choice] = out.choices
    assert choice.message.content == answer and choice.finish_reason == "stop"
    assert out.usage.prompt_tokens > 50  # BOS, image tokens and the question


class _Images(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = png_bytes(draw_example(self.path.strip("/").removesuffix(".png")))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pointing_answers_parse_to_the_drawn_shape(client: openai.OpenAI, image_host: str) -> None:
    # The square spans x 12..35 and y 20..43 of 96x64 px; the disc x 60..83.
    boxes = {"square": (12.5, 37.5), "disc": (62.5, 87.5)}
    for kind, (left, right) in boxes.items():
        text = (
            ask(client, f"{image_host}/{kind}.png", "Point to the shape.")
            .choices[0]
            .message.content
        )
        [(x, y)] = molmo_text.parse_points(text)
        assert left <= x <= right and 31.0 <= y <= 69.0, text
        [obj] = molmo_text.parse_pointed_objects(text)
        assert obj.label == "shape"


def test_streaming_gives_the_same_answer(client: openai.OpenAI) -> None:
    image = png_data_url(draw_example("disc"))
    whole = ask(client, image, "Point to the shape.").choices[0].message.content
    chunks = list(ask(client, image, "Point to the shape.", stream=True,
                      stream_options={"include_usage": True}))  # fmt: skip
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) > 3 and "".join(deltas) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 10


def test_stop_strings_and_max_tokens(client: openai.OpenAI) -> None:
    image = png_data_url(draw_example("square"))
    cut = ask(client, image, "Describe this image.", stop=[" on"]).choices[0]
    assert (cut.message.content, cut.finish_reason) == ("A white square", "stop")
    short = ask(client, image, "Describe this image.", max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    assert short.choices[0].message.content == "A wh"  # the first token is the format's space


def test_text_only_and_sampled_requests_are_answered(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="molmo-debug",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Describe this image."},
        ],
        max_tokens=20,
    )
    assert isinstance(out.choices[0].message.content, str)
    assert out.choices[0].finish_reason in {"stop", "length"} and out.usage.prompt_tokens < 60
    sampled = ask(client, png_data_url(draw_example("square")), "Describe this image.",
                  temperature=0.7, top_p=0.9)  # fmt: skip
    assert sampled.usage.completion_tokens >= 1


def test_eight_parallel_requests_are_all_answered(client: openai.OpenAI) -> None:
    jobs = [EXAMPLES[i % 4] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda e: ask(client, png_data_url(draw_example(e[0])), e[1]).choices[0].message.content,
            jobs,
        ))  # fmt: skip
    assert answers == [answer for _, _, answer in jobs]


def test_the_client_sees_bad_requests_as_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not valid base64"):
        ask(client, "data:image/png;base64,%%%", "Describe this image.")
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(
            model="gpt-imaginary", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError, match="messages must be a non-empty list"):
        client.chat.completions.create(model="molmo-debug", messages=[])
