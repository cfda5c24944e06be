"""Live guidance (P12): speech-to-screen latency of the live transcript for 1, 4 and 8
simultaneous speakers, and the live worker's CPU seconds per speaker-second.

Each speaker is a thread that behaves like the capture page: every second it POSTs the
next second of its take (espeak-ng speech, Opus in WebM with 1 s clusters, as
MediaRecorder writes with its 1 s timeslice) to the live endpoint through Django's test
client, and reads the live view in the answer; after the take ends it asks (GET) every
0.5 s until the text has caught up. One real Celery worker (`--queues live --pool solo`,
a subprocess, as in the Procfile) does the live steps against real Redis; PostgreSQL is
a scratch `test_...` database.

Latency of audio second t: the wall time at which a view first shows text decoded from
the audio up to t (`shown_seconds` >= t) minus the wall time at which second t was spoken (take
start + t). It includes the 1 s chunking and the page's 1 s refresh, as a person sees
it. CPU: the worker process's user+system time over the run / (speakers x audio s).

    .venv/bin/python benchmarks/live_latency.py [--speakers 1 4 8] [--seconds 30]

Prints one line per speaker count and one JSON line. Goal: p95 <= 4 s for 4 speakers on
2 cores with tiny.en.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator_app.settings.test")

SENTENCES = [
    "This is a photo of a busy street market on a sunny afternoon.",
    "There are three wooden stalls with striped awnings on the left.",
    "A large sign above the middle stall says fresh fruit every day.",
    "Two women in blue coats are choosing oranges from a crate.",
    "In the background a red tram passes in front of old brick houses.",
    "A small dog sleeps under the table next to a basket of apples.",
    "The colours are warm and bright, and the photo is slightly blurry at the edges.",
    "On the right a man carries four boxes of tomatoes toward a white van.",
]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def take_audio(seconds: float, voice_shift: int) -> tuple[bytes, list[int]]:
    """About `seconds` of espeak-ng speech as WebM/Opus, and the file length after each second."""
    from tests.captions.audio_fixtures import espeak_wav, wav_samples, webm_by_second

    words_needed = int(seconds * 2.5)  # espeak-ng at 150 wpm
    parts, i = [], voice_shift
    while sum(len(p.split()) for p in parts) < words_needed:
        parts.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    with tempfile.TemporaryDirectory() as tmp:
        wav = espeak_wav(Path(tmp) / "take.wav", " ".join(parts))
        samples = wav_samples(wav)[: int(seconds * 48_000)]
    data, lengths = webm_by_second(samples)
    lengths[-1] = len(data)  # the last post carries the encoder's last packets too
    return data, lengths


def speak(client: Any, assignment_id: int, audio: bytes, lengths: list[int]) -> dict[str, Any]:
    """One speaker: post a second of audio each second; returns latencies and server times."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = f"/api/v1/captions/live/{assignment_id}/"
    take = uuid.uuid4().hex
    seen: dict[int, float] = {}  # audio second -> wall time it was first on screen
    server_ms: list[float] = []
    paused = 0

    def note(view: dict[str, Any], now: float, *, ended: bool = False) -> None:
        nonlocal paused
        paused += bool(view["paused"])
        upto, heard = view["shown_seconds"], view["heard_seconds"]
        if ended and heard > len(lengths) - 1 and upto >= heard:
            upto = len(lengths)  # the text covers the whole take (its last second is partial)
        for second in range(1, int(upto + 0.05) + 1):
            seen.setdefault(second, now)

    started = time.perf_counter()
    offset = 0
    for n, length in enumerate(lengths, start=1):
        time.sleep(max(0.0, started + n - time.perf_counter()))  # second n is spoken now
        sent = time.perf_counter()
        response = client.post(
            url,
            {
                "take": take,
                "offset": str(offset),
                "received_ms": str(n * 1000),
                "final": "true" if n == len(lengths) else "false",
                "audio": SimpleUploadedFile("live.webm", audio[offset:length]),
            },
            format="multipart",
        )
        now = time.perf_counter()
        server_ms.append((now - sent) * 1000)
        assert response.status_code == 200, response.content
        offset = length
        note(response.json(), now, ended=n == len(lengths))
    total = len(lengths)
    deadline = time.perf_counter() + 60
    while len(seen) < total and time.perf_counter() < deadline:
        time.sleep(0.5)
        note(client.get(url, {"take": take}).json(), time.perf_counter(), ended=True)
    latencies = [seen[s] - (started + s) for s in range(1, total + 1) if s in seen]
    never = [s for s in range(1, total + 1) if s not in seen]
    return {"latencies": latencies, "missing": total - len(latencies), "server_ms": server_ms,
            "paused_views": paused, "never_shown": never}  # fmt: skip


def run(speakers: int, seconds: float, users: list[Any]) -> dict[str, Any]:
    import psutil
    from rest_framework.test import APIClient

    from annotator_app.work.services import assignment_next
    from tests.work.conftest import make_campaign

    make_campaign(speakers, f"live{speakers}-{uuid.uuid4().hex[:6]}", min_seconds=1,
                  max_seconds=600, live_guidance=True)  # fmt: skip
    jobs = []
    for i in range(speakers):
        assignment = assignment_next(user=users[i], kind="cap")
        assert assignment is not None
        client = APIClient()
        client.force_authenticate(users[i])
        jobs.append((client, assignment.pk, *take_audio(seconds, i)))

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotator_app", "worker", "--queues", "live",
         "--pool", "solo", "--hostname", f"livebench-{uuid.uuid4().hex[:6]}@%h",
         "--loglevel", "WARNING"],
        cwd=REPO, env=os.environ.copy(),
    )  # fmt: skip
    try:
        proc = psutil.Process(worker.pid)
        _warm_up(*jobs[0])
        cpu_before = sum(proc.cpu_times()[:2])
        results: list[dict[str, Any]] = [{} for _ in jobs]

        def one(i: int) -> None:
            from django.db import connection

            try:
                results[i] = speak(*jobs[i])
            finally:
                connection.close()  # the scratch database is dropped at the end

        threads = [threading.Thread(target=one, args=(i,)) for i in range(speakers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu = sum(proc.cpu_times()[:2]) - cpu_before
    finally:
        worker.terminate()
        worker.wait(30)
    latencies = [x for r in results for x in r["latencies"]]
    server = [x for r in results for x in r["server_ms"]]
    audio_seconds = sum(len(j[3]) for j in jobs)
    return {
        "speakers": speakers,
        "audio_seconds_each": seconds,
        "latency_s_p50": round(statistics.median(latencies), 2) if latencies else None,
        "latency_s_p95": round(_percentile(latencies, 95), 2) if latencies else None,
        "latency_s_max": round(max(latencies), 2) if latencies else None,
        "seconds_never_shown": sum(r["missing"] for r in results),
        "never_shown_which": sorted(x for r in results for x in r["never_shown"]),
        "paused_views": sum(r["paused_views"] for r in results),
        "endpoint_ms_p50": round(statistics.median(server), 1),
        "endpoint_ms_p95": round(_percentile(server, 95), 1),
        "worker_cpu_s_per_speaker_s": round(cpu / audio_seconds, 3),
    }


def _warm_up(client: Any, assignment_id: int, audio: bytes, lengths: list[int]) -> None:
    """Wait until the worker has started and loaded its model (a first start, not
    measured): two seconds of a throwaway take (the measured take replaces it)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = f"/api/v1/captions/live/{assignment_id}/"
    take = uuid.uuid4().hex
    form = {"take": take, "offset": "0", "received_ms": "2000", "final": "true",
            "audio": SimpleUploadedFile("live.webm", audio[: lengths[1]])}  # fmt: skip
    assert client.post(url, form, format="multipart").status_code == 200
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if client.get(url, {"take": take}).json()["steps"] > 0:
            return
        time.sleep(0.5)
    raise SystemExit("the live worker did not answer within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from annotator_app.accounts.models import Role
    from annotator_app.accounts.services import user_ensure

    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    # The worker subprocess inherits this run's Redis slot (test_slot); live steps use
    # Redis only, never the database.
    load = os.getloadavg()[0]
    results = []
    try:
        users = [
            user_ensure(username=f"live-bench-{i}", password=uuid.uuid4().hex,
                        role=Role.ANNOTATOR)[0]
            for i in range(max(args.speakers))
        ]  # fmt: skip
        for speakers in args.speakers:
            result = run(speakers, args.seconds, users)
            result["load_avg_1min_before"] = round(load, 1)
            results.append(result)
            print(
                f"{speakers} speaker(s), {args.seconds:.0f} s each: speech-to-screen p50 "
                f"{result['latency_s_p50']} s, p95 {result['latency_s_p95']} s, max "
                f"{result['latency_s_max']} s; never shown {result['seconds_never_shown']} s; "
                f"live worker {result['worker_cpu_s_per_speaker_s']} CPU s per speaker-second; "
                f"endpoint p50 {result['endpoint_ms_p50']} ms (load avg before {load:.1f})",
                flush=True,
            )
            load = os.getloadavg()[0]
    finally:
        teardown_databases(databases, verbosity=0)
    print(json.dumps({"cores": os.cpu_count(), "model": settings.LIVE_WHISPER_MODEL,
                      "live_whisper_threads": settings.LIVE_WHISPER_THREADS,
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
