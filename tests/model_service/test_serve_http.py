"""The model server's HTTP side, in-process on a random `debug` Molmo checkpoint: every
malformed or hostile request gets a 4xx naming the problem (bad base64, images over the
byte or pixel limit, a decompression bomb, URLs the SSRF guard refuses, unknown model,
missing messages, ...), the bearer token, 503 + Retry-After when the waiting line is
full, 504 on timeouts, and image_url fetched over http from an allowed address."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from model_service import checkpoint
from model_service.model import MolmoModel
from model_service.presets import get_preset
from model_service.serve.engine import Engine
from model_service.serve.images import ImageLimits
from model_service.serve.molmo_backend import MolmoBackend
from model_service.serve.server import ModelServer, ServeSettings
from tests.molmo_fixtures import draw_example, png_bytes, png_data_url

NAME = "molmo-test"
LIMITS = ImageLimits(max_bytes=20_000, max_pixels=100_000, max_images=1)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> MolmoBackend:
    folder = tmp_path_factory.mktemp("ck") / "checkpoint"
    cfg = get_preset("debug")
    checkpoint.save(folder, MolmoModel(cfg, seed=0), cfg)
    return MolmoBackend(folder, device="cpu")


@contextmanager
def serving(
    backend: MolmoBackend, *, start: bool = True, max_batch: int = 8, max_queue: int = 64,
    **settings: Any,
) -> Iterator[tuple[str, Engine]]:  # fmt: skip
    engine = Engine(backend, max_batch=max_batch, max_queue=max_queue)
    if start:
        engine.start()
    options = {"limits": LIMITS, **settings}
    server = ModelServer(("127.0.0.1", 0), engine, backend, ServeSettings(NAME, "molmo", **options))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", engine
    finally:
        server.shutdown()
        server.server_close()
        engine.close()


def call(
    url: str, body: Any = None, *, method: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), exc.headers


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": NAME, "messages": [{"role": "user", "content": content}], "max_tokens": 4,
            "temperature": 0, **extra}  # fmt: skip


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid 1x1 PNG whose header claims `width x height` pixels."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def noise_png(side: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return png_bytes(Image.fromarray(pixels))


def data_url(raw: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(raw).decode()


SMALL = png_data_url(draw_example("square"))
CASES = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    ({"model": NAME}, 400, "messages must be a non-empty list"),
    ({"messages": []}, 400, "messages must be a non-empty list"),
    ({"messages": ["hi"]}, 400, "messages[0] must be an object"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "content"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400, "text or an image_url"),
    (chat("x", model="gpt-imaginary"), 404, "not served here"),
    (chat("x", max_tokens=0), 400, "max_tokens"),
    (chat("x", max_tokens=10**6), 400, "context length"),
    (chat("x", temperature=7), 400, "temperature"),
    (chat("x", stream="yes"), 400, "stream"),
    (chat("x", n=3), 400, "n must be 1"),
    (chat("x", stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
    (chat([image_part("data:image/png;base64,@@not base64@@")]), 400, "not valid base64"),
    (chat([image_part("data:image/png,rawbytes")]), 400, "base64-encoded"),
    (chat([image_part(data_url(noise_png(200)))]), 413, "the limit is 20 kB"),
    (chat([image_part(data_url(png_bytes(Image.new("RGB", (400, 300)))))]), 413, "pixels"),
    (chat([image_part(data_url(bomb_png()))]), 413, "too many pixels"),
    (chat([image_part(data_url(bomb_png(1000, 1000)))]), 413, "1,000,000 pixels"),
    (chat([image_part(data_url(b"<svg onload=alert(1)>", "image/svg+xml"))]), 400, "decodable"),
    (chat([image_part(data_url(b"GIF89a" + b"\x00" * 40, "image/gif"))]), 400, "decodable"),
    (chat([image_part(SMALL), image_part(SMALL)]), 400, "at most 1 image"),
    (chat([image_part("file:///etc/passwd")]), 400, "http(s) or data:"),
    (chat([image_part("http://169.254.169.254/latest/meta-data/")]), 400, "metadata"),
    (chat([image_part("http://127.0.0.1:9/x.png")]), 400, "loopback"),
    (chat([image_part("http://[::ffff:127.0.0.1]:9/x.png")]), 400, "loopback"),
]


def test_malformed_and_hostile_requests_get_a_4xx_naming_the_problem(
    backend: MolmoBackend,
) -> None:
    with serving(backend) as (base, engine):
        for body, status, message in CASES:
            got, out, _ = call(f"{base}/v1/chat/completions", body)
            assert (got, message in out["error"]["message"]) == (status, True), (body, out)
            assert out["error"]["type"] in {"invalid_request_error", "not_found_error"}
        assert engine.stats["requests"] == 0  # none of them reached the model
        ok, out, _ = call(f"{base}/v1/chat/completions", chat([image_part(SMALL)]))
        assert ok == 200 and out["usage"]["completion_tokens"] >= 1


def test_routes_health_and_body_limit(backend: MolmoBackend) -> None:
    with serving(backend) as (base, _):
        status, health, _ = call(f"{base}/health")
        assert status == 200 and health["model"] == NAME and health["kind"] == "molmo"
        assert call(f"{base}/v1/models")[1]["data"][0]["id"] == NAME
        assert call(f"{base}/v1/models/{NAME}")[0] == 200
        assert call(f"{base}/v1/models/other")[0] == 404
        assert call(f"{base}/v1/completions", {"prompt": "x"})[0] == 404
        assert call(f"{base}/nothing")[0] == 404
        # A body over the limit is refused on its Content-Length, before any of it is read.
        import http.client

        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(LIMITS.max_bytes * 2 + (2 << 20)))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and b"at most" in response.read()
        conn.close()


def test_the_bearer_token_guards_everything_but_health(backend: MolmoBackend) -> None:
    with serving(backend, token="s3cret-token") as (base, _):
        assert call(f"{base}/health")[0] == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            status, out, got_headers = call(
                f"{base}/v1/chat/completions", chat("x"), headers=headers
            )
            assert status == 401 and "bearer token" in out["error"]["message"]
            assert got_headers["WWW-Authenticate"] == "Bearer"
            assert call(f"{base}/v1/models", headers=headers)[0] == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert call(f"{base}/v1/chat/completions", chat("x"), headers=good)[0] == 200
        assert call(f"{base}/v1/models", headers=good)[0] == 200


def test_a_full_waiting_line_answers_503_with_retry_after(backend: MolmoBackend) -> None:
    with serving(backend, start=False, max_batch=1, max_queue=0) as (base, engine):
        results: list[Any] = []
        first = threading.Thread(
            target=lambda: results.append(call(f"{base}/v1/chat/completions", chat("a")))
        )
        first.start()  # takes the one slot; the engine is not running yet
        deadline = time.monotonic() + 60
        while engine.load()["waiting"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        status, out, headers = call(f"{base}/v1/chat/completions", chat("b"))
        assert status == 503 and "busy" in out["error"]["message"]
        assert int(headers["Retry-After"]) >= 1
        engine.start()
        first.join(60)
        assert results[0][0] == 200


def test_a_request_that_runs_out_of_time_gets_504(backend: MolmoBackend) -> None:
    with serving(backend, start=False, request_timeout=0.3) as (base, engine):
        status, out, _ = call(f"{base}/v1/chat/completions", chat("x"))
        assert status == 504 and "did not finish within 0.3 s" in out["error"]["message"]
        engine.start()  # the abandoned job is dropped, not run
        deadline = time.monotonic() + 30
        while engine.load() != {"running": 0, "waiting": 0} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.load() == {"running": 0, "waiting": 0} and engine.stats["tokens"] == 0


class _ImageHost(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        routes = {"/square.png": png_bytes(draw_example("square")), "/big.png": noise_png(200)}
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = routes.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_images_go_through_the_ssrf_guard(backend: MolmoBackend, image_host: str) -> None:
    url = f"{image_host}/square.png"
    with serving(backend) as (base, _):  # shipped default: loopback refused
        status, out, _ = call(f"{base}/v1/chat/completions", chat([image_part(url)]))
        assert status == 400 and "loopback" in out["error"]["message"]
    port = image_host.rsplit(":", 1)[1]
    allowed = ImageLimits(**{**LIMITS.__dict__, "allowed_addresses": (f"127.0.0.1:{port}",)})
    with serving(backend, limits=allowed) as (base, _):
        status, out, _ = call(
            f"{base}/v1/chat/completions", chat([image_part(url), {"type": "text", "text": "hi"}])
        )
        assert status == 200 and out["usage"]["prompt_tokens"] > 50  # the image's tokens
        for path, code, message in [
            ("/redirect", 400, "metadata"),  # every redirect hop is checked too
            ("/big.png", 413, "too large"),
            ("/missing.png", 400, "HTTP 404"),
        ]:
            status, out, _ = call(
                f"{base}/v1/chat/completions", chat([image_part(image_host + path)])
            )
            assert (status, message in out["error"]["message"]) == (code, True), out


def test_exif_rotation_and_formats(backend: MolmoBackend) -> None:
    from model_service.serve.images import decode_image

    image = Image.new("RGB", (60, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: a camera held upright
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    decoded = decode_image(out.getvalue(), "test", LIMITS)
    assert decoded.size == (20, 60) and decoded.mode == "RGB"
    gray = io.BytesIO()
    Image.new("L", (10, 10), 128).save(gray, "WEBP")
    assert decode_image(gray.getvalue(), "test", LIMITS).mode == "RGB"


def test_prompts_follow_the_sft_chat_format(backend: MolmoBackend) -> None:
    from model_service.serve.protocol import parse_chat_request

    request = parse_chat_request(
        {"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is it?"},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": [{"type": "text", "text": "Where?"}]},
        ]}
    )  # fmt: skip
    tok = backend.tokenizer
    assert tok.decode(backend.prompt_ids(request)) == (
        " User: Be brief.\nWhat is it? Assistant: A cat. User: Where? Assistant:"
    )
    assert backend.prompt_ids(request).count(tok.eos_id) == 1  # the earlier answer ends


def test_an_official_folder_is_served_as_the_model_generates(tmp_path: Path) -> None:
    """`serve --checkpoint OFFICIAL --base-preset debug` (the CLI's own build path): a tiny
    Molmo-0924 folder whose tokenizer orders the image tokens as vLLM expects and whose
    config declares a real vocabulary below its padded rows answers what the loaded model
    generates for the same prompt."""
    from model_service import data
    from model_service.serve import cli
    from tests.model_service.test_checkpoint import randomised, write_official_folder
    from tests.model_service.test_image_tokens import ORDERS, official_cfg

    cfg = official_cfg(ORDERS["vllm"])
    folder = tmp_path / "Molmo-tiny-0924"
    write_official_folder(folder, randomised(MolmoModel(cfg, seed=9)), cfg)
    args = cli.parse_args(["--checkpoint", str(folder), "--base-preset", "debug", "--port", "0",
                           "--device", "cpu", "--threads", "2"])  # fmt: skip
    server = cli.build_server(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        image = draw_example("disc")
        body = chat([{"type": "text", "text": "w1"}, image_part(png_data_url(image))], max_tokens=6)
        body["model"] = "Molmo-tiny-0924"
        status, out, _ = call(f"{base}/v1/chat/completions", body)
    finally:
        server.shutdown()
        server.server_close()
        server.engine.close()
    assert status == 200, out
    loaded = checkpoint.load(folder, base=get_preset("debug"))
    tok = loaded.tokenizer
    assert tok.im_patch_id == ORDERS["vllm"].im_patch
    item = data.build_prompt(tok, loaded.preprocessor, np.asarray(image), " User: w1 Assistant:")
    want = loaded.model.generate(data.collate([item], pad_id=tok.pad_id), 6, tok.eos_id)[0]
    assert out["choices"][0]["message"]["content"] == tok.decode(want).removeprefix(" ")
    assert out["usage"]["prompt_tokens"] == len(item["input_ids"])
