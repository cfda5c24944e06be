"""Catalog fixtures: real image bytes, a per-test media folder, a local HTTP server
on 127.0.0.1 that tests script route by route, and moto's S3 server."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

Route = Callable[[BaseHTTPRequestHandler], None]


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small real image; different seeds give different bytes."""
    img = Image.new("RGB", size, (seed * 37 % 256, 90, 160))
    ImageDraw.Draw(img).rectangle((4 + seed % 20, 4, 30, 30), fill=(250, 250, 20))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny, well-formed PNG whose header declares a huge canvas."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def animation(fmt: str = "GIF", frames: int = 5000, size: tuple[int, int] = (16, 16)) -> bytes:
    """An animated GIF, PNG (APNG) or WebP; every frame differs, so none is merged away."""
    images = []
    for n in range(frames):
        img = Image.new("RGB", size, (n % 256, (n // 256) % 256, 90))
        ImageDraw.Draw(img).point((n % size[0], (n // size[0]) % size[1]), fill=(255, 255, 255))
        images.append(img)
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=40, loop=0)
    return out.getvalue()


SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)
HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Each test stores into its own empty folder, so "nothing written" is checkable."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    return root


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_GET(self) -> None:
        self.server.seen_hosts.append(self.headers.get("Host", ""))
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.seen_hosts: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve_bytes(self, path: str, body: bytes, content_type: str = "image/png") -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.routes[path] = route
        return self.url(path)

    def redirect(self, path: str, location: str) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = route
        return self.url(path)

    def stream_endless(self, path: str, chunk: bytes = b"\x89PNG" + b"\x00" * 65532) -> str:
        """Sends chunks with no Content-Length until the client hangs up."""

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(2000):
                    h.wfile.write(chunk)

        self.routes[path] = route
        return self.url(path)

    def declare_huge(self, path: str) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(10**10))
            h.end_headers()
            with contextlib.suppress(OSError):
                h.wfile.write(b"\x89PNG")

        self.routes[path] = route
        return self.url(path)

    def stall(self, path: str, seconds: float) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            time.sleep(seconds)
            with contextlib.suppress(OSError):
                h.send_response(200)
                h.end_headers()

        self.routes[path] = route
        return self.url(path)


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_server(settings, http_server: ScriptedServer) -> ScriptedServer:  # type: ignore[no-untyped-def]
    """Let the fetch guard reach this one test server (only its exact ip:port)."""
    settings.FETCH_ALLOWED_ADDRESSES = [f"127.0.0.1:{http_server.port}"]
    return http_server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(settings, monkeypatch, moto_endpoint: str):  # type: ignore[no-untyped-def]
    """An S3 client on moto; settings and fake credentials point the app at it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings.AWS_S3_ENDPOINT_URL = moto_endpoint
    settings.AWS_S3_REGION_NAME = "us-east-1"
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
