"""Caption quality of the clean stage, per stage, against hand-written references.

    .venv/bin/python benchmarks/clean_quality.py                       # raw and rules only
    .venv/bin/python benchmarks/clean_quality.py --models smollm2 qwen2.5-coder-0.5b
    .venv/bin/python benchmarks/clean_quality.py --base-url URL --model NAME [--api-key K]

Data: benchmarks/data/clean_quality.json, spoken-style transcripts with the caption an
editor makes of each (deletion-only edits; the file states the style). Its `dev` split
may be looked at while writing rules, its `heldout` split is only scored; both are
printed. Stages: `raw` (the transcript), `rules` (pipelines.rules), and `rules+LLM` for
each local model preset (model_service.llm_models; each is started here with the
project's server, `python -m model_service.serve --llm --model PRESET`, which serves it
under the preset's name, `--first-start` on an empty cache so that the GGUF conversion is
timed) and for an endpoint given with --base-url (OpenAI, vLLM, ...).

Per stage and split it prints: mean WER to the reference (lower case, punctuation and
hyphens dropped, number words as digits), mean recall of the reference's content words,
the loop rate (final texts with a repeated phrase or sentence; for LLM stages also the
share of LLM answers that looped), the fallback rate, how the accepted LLM edits compare
with the rule text on WER (better / same / worse), and seconds per transcript (wall time
of the stage over the split / items, requests sent `--concurrency` at a time). For each
local model: the server's first start (to /health) and peak resident memory. The load
average is printed at start and end: on a shared machine the seconds move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_service.llm_models import PRESETS  # noqa: E402
from pipelines import text_checks  # noqa: E402
from pipelines.cleaning import CleanResult, clean_transcript  # noqa: E402
from pipelines.llm import LLMClient  # noqa: E402
from pipelines.rules import rule_clean  # noqa: E402

DATA = REPO / "benchmarks" / "data" / "clean_quality.json"
SPLITS = ("dev", "heldout")
LOOP_WORDS = ("repetition loop", "repeated sentence", "max_tokens")


# --- measures -----------------------------------------------------------------------------


def normalise(text: str) -> list[str]:
    """Words for WER: lower case, no punctuation or hyphens, number words as digits."""
    words = re.findall(r"[a-z0-9']+", text.replace("’", "'").lower().replace("-", " "))
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if word in text_checks.NUMBER_WORDS or (word == "and" and run):
            run.append(word)
            continue
        trailing = 0
        while run and run[-1] == "and":
            run.pop()
            trailing += 1
        if run:
            out += sorted(text_checks.numbers(" ".join(run)), key=float)
            run = []
        out += ["and"] * trailing
        if word:
            out.append(word)
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1]


def wer(hyp: str, ref: str) -> float:
    words = normalise(ref)
    return edit_distance(words, normalise(hyp)) / max(1, len(words))


def ref_recall(hyp: str, ref: str) -> float:
    return text_checks.recall(text_checks.content_terms(ref), hyp)[0]


# --- stages -------------------------------------------------------------------------------


@dataclass
class Item:
    id: str
    split: str
    transcript: str
    reference: str


@dataclass
class StageRun:
    name: str
    outputs: dict[str, str] = field(default_factory=dict)
    results: dict[str, CleanResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # per split, wall time
    counts: dict[str, int] = field(default_factory=dict)  # per split, items run
    extra: str = ""


def load(path: Path) -> list[Item]:
    raw = json.loads(path.read_text())
    return [Item(i["id"], i["split"], i["transcript"], i["reference"]) for i in raw["items"]]


def run_plain(name: str, items: list[Item], fn: Callable[[str], str]) -> StageRun:
    stage = StageRun(name)
    for split in SPLITS:
        chosen = [i for i in items if i.split == split]
        started = time.perf_counter()
        for item in chosen:
            stage.outputs[item.id] = fn(item.transcript)
        stage.seconds[split] = time.perf_counter() - started
        stage.counts[split] = len(chosen)
    return stage


def run_llm(name: str, items: list[Item], client: LLMClient, concurrency: int) -> StageRun:
    stage = StageRun(name)
    for split in SPLITS:
        chosen = [i for i in items if i.split == split]
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(
                pool.map(lambda i: clean_transcript(i.transcript, client=client), chosen)
            )
        stage.seconds[split] = time.perf_counter() - started
        stage.counts[split] = len(chosen)
        for item, result in zip(chosen, results, strict=True):
            stage.results[item.id] = result
            stage.outputs[item.id] = result.text
    return stage


# --- local servers ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def local_server(preset: str, *, first_start: bool, threads: int) -> Iterator[tuple[str, dict]]:
    """Start the project's LLM server with `preset`; yields its URL and start figures."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="clean-quality-") as scratch:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if first_start:
            env["LLM_CACHE_DIR"] = scratch
        log = Path(scratch) / "server.log"
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "model_service.serve", "--llm", "--model", preset,
                 "--port", str(port), "--threads", str(threads)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        figures: dict = {}
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        if r.status == 200 and json.load(r).get("status") == "ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() - started > 1800:
                    raise SystemExit(
                        f"{preset}: the server did not start\n{log.read_text()[-2000:]}"
                    )
                time.sleep(0.5)
            figures["start_s"] = time.monotonic() - started
            yield f"http://127.0.0.1:{port}/v1", figures
            figures["peak_rss_mb"] = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


# --- report -------------------------------------------------------------------------------


def _loop_rate_of_answers(results: list[CleanResult]) -> str:
    answers = sum(r.llm_attempts for r in results)
    looped = sum(
        sum(any(w in reason for w in LOOP_WORDS) for reason in r.flag_reasons) for r in results
    )
    return f"{looped}/{answers}" if answers else "-"


def report(stages: list[StageRun], items: list[Item], rules: StageRun, header: bool = True) -> None:
    """One row per stage and split: the measures of the module docstring."""
    title = (
        f"{'stage':<34} {'split':<8} {'n':>3} {'WER':>6} {'recall':>7} {'loops':>6} "
        f"{'LLM loops':>9} {'fallback':>9} {'accepted vs rules (better/same/worse)':>38} {'s/item':>7}"
    )
    if header:
        print(title)
        print("-" * len(title))
    for stage in stages:
        for split in SPLITS:
            chosen = [i for i in items if i.split == split]
            if not chosen or not all(i.id in stage.outputs for i in chosen):
                continue
            out = [stage.outputs[i.id] for i in chosen]
            ran = stage.counts[split]
            wers = [wer(o, i.reference) for o, i in zip(out, chosen, strict=True)]
            recall = sum(ref_recall(o, i.reference) for o, i in zip(out, chosen, strict=True))
            loops = sum(bool(text_checks.loop_reason(o)) for o in out)
            results = [stage.results[i.id] for i in chosen if i.id in stage.results]
            fallback = f"{sum(r.used_fallback for r in results)}/{len(results)}" if results else "-"
            compare = "-"
            if results:
                better = same = worse = 0
                for item, w in zip(chosen, wers, strict=True):
                    if stage.results[item.id].used_fallback:
                        continue
                    base = wer(rules.outputs[item.id], item.reference)
                    better += w < base - 1e-9
                    worse += w > base + 1e-9
                    same += abs(w - base) <= 1e-9
                compare = f"{better}/{same}/{worse}"
            print(
                f"{stage.name:<34} {split:<8} {len(chosen):>3} {sum(wers) / len(wers):>6.3f} "
                f"{recall / len(chosen):>7.3f} {loops:>3}/{len(out):<2} "
                f"{_loop_rate_of_answers(results):>9} {fallback:>9} {compare:>38} "
                f"{stage.seconds[split] / ran:>7.2f}",
                flush=True,
            )


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", nargs="*", default=[], choices=sorted(PRESETS))
    parser.add_argument("--base-url", default="", help="an OpenAI-compatible endpoint to score")
    parser.add_argument("--model", default="", help="the model name sent to --base-url")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "local"))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("LLM_THREADS") or 2))
    parser.add_argument(
        "--first-start", action="store_true", help="start each local model on an empty cache"
    )
    parser.add_argument("--show", type=int, default=0, help="print the N worst LLM edits")
    parser.add_argument(
        "--llm-items",
        type=int,
        default=0,
        help="LLM stages on the first N items of each split only (0: all); raw and rules "
        "rows are then printed for the same items too",
    )
    args = parser.parse_args()
    items = load(args.data)
    llm_items = items
    if args.llm_items:
        llm_items = [
            i for s in SPLITS for i in [x for x in items if x.split == s][: args.llm_items]
        ]
    print(
        f"machine: {platform.node()} {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    print(f"load average at start: {load_average()}")
    print("items: " + ", ".join(f"{s} {sum(i.split == s for i in items)}" for s in SPLITS))
    raw = run_plain("raw transcript", items, lambda t: t)
    rules = run_plain("rules", items, rule_clean)
    stages = [raw, rules]
    report(stages, items, rules)
    if llm_items is not items:
        print(f"\nLLM stages on the first {args.llm_items} items of each split; for comparison:")
        report(stages, llm_items, rules)
    for preset in args.models:
        with local_server(preset, first_start=args.first_start, threads=args.threads) as (url, fig):
            client = LLMClient(url, "local", PRESETS[preset].served_name, 900.0, max_retries=0)
            stage = run_llm(f"rules+LLM {preset}", llm_items, client, args.concurrency)
        cache = "empty cache (GGUF conversion timed)" if args.first_start else "cached conversion"
        stage.extra = (
            f"{stage.name}: first start {fig['start_s']:.1f} s ({cache}), peak RSS {fig['peak_rss_mb']:.0f} MB, "
            f"{args.threads} threads, concurrency {args.concurrency}"
        )
        stages.append(stage)
        report([stage], llm_items, rules, header=False)
        print(stage.extra, flush=True)
    if args.base_url:
        client = LLMClient(args.base_url, args.api_key, args.model, 300.0)
        stages.append(run_llm(f"rules+LLM {args.model}", llm_items, client, args.concurrency))
        report(stages[-1:], llm_items, rules, header=False)
    for stage in stages[2:]:
        worst = sorted(
            (i for i in llm_items if not stage.results[i.id].used_fallback),
            key=lambda i: (
                wer(rules.outputs[i.id], i.reference) - wer(stage.outputs[i.id], i.reference)
            ),
        )[: args.show]
        for item in worst:
            print(
                f"\n[{stage.name}] {item.id}\n  rules: {rules.outputs[item.id]}\n  llm:   {stage.outputs[item.id]}"
            )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
