"""Time to make the seekable copy of a browser recording (remux with PyAV, no re-encode).

The input is what Chrome's MediaRecorder sends: Opus speech in WebM written as a live
stream (no Duration, no Cues): espeak-ng speech looped to N seconds, encoded by PyAV at
32 kb/s, then muxed with the WebM muxer's live mode. The remux runs at every upload
(inside the request, after the original is stored), so its time adds to the upload's.

    .venv/bin/python benchmarks/playback_remux.py [--seconds 90] [--runs 50]

Prints wall-clock p50/p95 and the mean CPU time in milliseconds (on a loaded machine
the CPU time is the steadier figure), and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from pipelines.playback import seekable_webm
    from tests.captions.browser_audio import chrome_like_webm

    audio = chrome_like_webm(args.seconds)
    seekable_webm(audio)  # warm: codec and muxer tables
    times = []
    cpu_start = time.process_time()
    for _ in range(args.runs):
        start = time.perf_counter()
        seekable_webm(audio)
        times.append((time.perf_counter() - start) * 1000)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / args.runs
    times.sort()
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"remux of {args.seconds:.0f} s Opus WebM ({len(audio)} bytes), {args.runs} runs:")
    print(f"  wall p50 {p50:.1f} ms, p95 {p95:.1f} ms; CPU time {cpu_ms:.1f} ms per remux")
    print(json.dumps({"seconds": args.seconds, "bytes": len(audio), "p50_ms": round(p50, 2),
                      "p95_ms": round(p95, 2), "cpu_ms": round(cpu_ms, 2), "runs": args.runs}))  # fmt: skip


if __name__ == "__main__":
    main()
