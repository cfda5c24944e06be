"""Shared by the serving benchmarks: start an OpenAI-compatible server as a subprocess,
send the same chat requests one at a time or N at a time, and summarise.

Not a benchmark itself; see serve_throughput.py and llm_serving.py.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    command: list[str], port: int, log: Path, *, env: dict[str, str] | None = None,
    health: str = "/health", timeout: float = 600,
) -> Iterator[str]:  # fmt: skip
    """Start `command` (which must listen on `port`), wait for `health`, stop it after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + health, timeout=2) as response:  # noqa: S310 - local http
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"{command[:4]} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_chat(
    base: str, body: dict[str, Any], timeout: float = 900
) -> tuple[float, dict[str, Any]]:
    """One non-streaming chat completion; (seconds, response body)."""
    request = urllib.request.Request(  # noqa: S310 - the local server's http URL
        f"{base}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            out = json.load(response)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:500]!r}") from None
    return time.perf_counter() - began, out


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    wall_s: float
    latencies: list[float]
    completion_tokens: int

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "wall_s": round(self.wall_s, 2),
            "requests_per_s": round(self.requests / self.wall_s, 3),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.completion_tokens / self.wall_s, 2),
            "latency_p50_s": round(statistics.median(ordered), 3),
            "latency_p95_s": round(p95, 3),
        }


def run_load(base: str, bodies: list[dict[str, Any]], concurrency: int) -> LoadResult:
    """Send every body, `concurrency` at a time; all must succeed."""
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda body: post_chat(base, body), bodies))
    wall = time.perf_counter() - began
    tokens = sum(int(out["usage"]["completion_tokens"]) for _, out in results)
    return LoadResult(concurrency, len(bodies), wall, [s for s, _ in results], tokens)


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
