"""Clean-stage throughput: N transcripts cleaned one after another vs K at a time.

    .venv/bin/python benchmarks/clean_throughput.py --n 8 --concurrency 4 [--abba]

Without OPENAI_BASE_URL (or --base-url) it starts the local server
(`python -m model_service.serve --llm`) on a free port and stops it afterwards. Prints
transcripts/s, completion tokens/s, the speedup of the concurrent run, and how many
captions fell back to the rule-based text. Transcripts are synthetic spoken
descriptions (seeded), so runs are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines.cleaning import CleanResult, clean_transcript  # noqa: E402
from pipelines.llm import ChatResult, LLMClient  # noqa: E402

OBJECTS = ["dog", "cat", "bicycle", "lamp", "chair", "mug", "car", "tree", "book", "sign"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "brown", "orange"]
PLACES = ["on the left", "on the right", "in the middle", "in the background", "near the top"]
FILLERS = ["um,", "uh,", "you know,", "like,", "I mean,"]
COUNTS = ["two", "three", "four", "a"]


def transcript(rng: random.Random, sentences: int) -> str:
    """A spoken description with fillers, a false start and a repeated word."""
    parts = ["Um, so this is a picture of a room."]
    for _ in range(sentences):
        count = rng.choice(COUNTS)
        noun = rng.choice(OBJECTS) + ("" if count == "a" else "s")
        words = f"there {'is' if count == 'a' else 'are'} {count} {rng.choice(COLOURS)} {noun} {rng.choice(PLACES)}"
        if rng.random() < 0.4:
            words = f"{rng.choice(FILLERS)} {words}"
        if rng.random() < 0.2:
            words = "there is a- " + words
        if rng.random() < 0.2:
            words = words.replace(" the ", " the the ", 1)
        parts.append(words[0].upper() + words[1:] + ".")
    return " ".join(parts)


class CountingClient(LLMClient):
    """Adds up the completion tokens the server reports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.completion_tokens = 0
        self.calls = 0

    def complete(self, messages: Any, *, max_tokens: int, temperature: float = 0.0) -> ChatResult:
        result = super().complete(messages, max_tokens=max_tokens, temperature=temperature)
        with self._lock:
            self.completion_tokens += result.completion_tokens
            self.calls += 1
        return result


@contextmanager
def local_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_service.serve", "--llm", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the local LLM server did not start") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(client: CountingClient, texts: list[str], workers: int) -> tuple[float, list[CleanResult]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda t: clean_transcript(t, client=client), texts))
    return time.perf_counter() - started, results


def report(label: str, seconds: float, tokens: int, results: list[CleanResult]) -> None:
    fallbacks = sum(r.used_fallback for r in results)
    attempts = sum(r.llm_attempts for r in results)
    print(
        f"{label:<14} {len(results) / seconds:6.3f} transcripts/s  {tokens / seconds:7.1f} tokens/s  "
        f"{seconds:7.1f} s  llm calls {attempts:3d}  fallbacks {fallbacks}/{len(results)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="transcripts per run")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent requests")
    parser.add_argument("--sentences", type=int, default=3, help="sentences per transcript")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", ""))
    parser.add_argument("--model", default=os.environ.get("LLM_MODEL", "SmolLM2-135M-Instruct"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "local"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--abba", action="store_true", help="run sequential, concurrent, concurrent, sequential"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    texts = [transcript(rng, args.sentences) for _ in range(args.n)]
    with local_server() if not args.base_url else _given(args.base_url) as base_url:
        print(
            f"endpoint {base_url}  model {args.model}  n={args.n}  concurrency={args.concurrency}"
        )
        # One untimed call so that neither run pays the first request's warm-up.
        warm = CountingClient(base_url, args.api_key, args.model, 600.0)
        warm.chat([{"role": "user", "content": "Say ok."}], max_tokens=2)
        modes = [("sequential", 1), (f"concurrent x{args.concurrency}", args.concurrency)]
        # ABBA order: a machine whose load drifts during the run favours neither mode.
        order = (modes + modes[::-1]) if args.abba else modes
        seconds: dict[str, float] = {}
        for label, workers in order:
            client = CountingClient(base_url, args.api_key, args.model, 600.0)
            took, results = run(client, texts, workers)
            report(label, took, client.completion_tokens, results)
            seconds[label] = seconds.get(label, 0.0) + took
        seq, conc = (seconds[label] for label, _ in modes)
        print(f"speedup {seq / conc:.2f}x (total sequential {seq:.1f} s, concurrent {conc:.1f} s)")
        health = base_url.removesuffix("/v1") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=5) as response:  # noqa: S310 - http(s) base URL
                stats = json.load(response)
            if "largest_batch" in stats:
                print(f"server: {stats['batches']} batches, largest {stats['largest_batch']}")
        except OSError:
            pass


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
