"""AMA ask-to-answer latency, and CapQA pairs per minute with the share rejected.

    .venv/bin/python benchmarks/ama_latency.py [--asks 8] [--concurrency 1 4]
        [--capqa-captions 6] [--redis-url redis://127.0.0.1:6379/11]

Latency runs through the whole stack: a scratch database (created on the DATABASE_URL
server, migrated, dropped at the end), the broker at --redis-url, one real Celery worker
process on queue `ama` (thread pool, as many threads as the largest concurrency), real
OCR and the LLM. Each simulated annotator leases an AMA item over its own image, asks
through the API (the Django test client: the view, the service, the enqueue) and polls
until the round is answered; ask-to-answer is from before the request to the moment the
round's `answered_at` is stored. With K concurrent annotators, K threads do this back
to back until --asks answers per level are in. Every image is new, so each first round
reads OCR (the costly part on CPU); `--revisions` adds a rejected round per session
(cached OCR: the LLM alone).

CapQA runs `capqa_caption_process` over --capqa-captions accepted captions (the Celery
task's service) and reports pairs kept per minute and the share rejected by validation,
with the reasons.

Without OPENAI_BASE_URL it starts the local server (`python -m model_service.serve
--llm`, SmolLM2-135M-Instruct) on a free port. A warm-up ask (OCR engine and LLM loaded)
goes first and is not counted.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.asr_throughput import runtime_env_defaults  # noqa: E402
from benchmarks.clean_throughput import local_server  # noqa: E402

SIGN_WORDS = ["OPEN", "CLOSED", "SALE", "EXIT", "CAFE", "BAKERY", "PARKING", "NO DOGS", "SHOES"]
CAPTIONS = [
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot on the "
    "left. Above the door a wooden sign says open.",
    "Two children play with a brown dog on green grass in a park. A white fence runs behind "
    "them and tall trees stand in the background under a cloudy sky.",
    "A kitchen table holds a glass bowl of oranges, two white cups and a black teapot. A "
    "calendar hangs on the yellow wall behind the table.",
]


def sign_png(seed: int) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (640, 240), (245, 240, 225 - seed % 20))
    pen = ImageDraw.Draw(image)
    font_path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    font = ImageFont.truetype(str(font_path), 36) if font_path.exists() else None
    words = [SIGN_WORDS[(seed + k) % len(SIGN_WORDS)] for k in range(2)]
    pen.text(
        (24, 24), f"{words[0]} {seed % 12 + 1} TO {seed % 7 + 5}", fill=(15, 15, 15), font=font
    )
    pen.text((24, 100), words[1], fill=(15, 15, 15), font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


class Annotators:
    """Sessions over fresh images, asked through the API."""

    def __init__(self) -> None:
        from annotator_app.accounts.models import Role, User
        from annotator_app.work.services import campaign_create

        self.User, self.Role = User, Role
        self.campaign = campaign_create(name=f"bench-ama-{uuid.uuid4().hex[:6]}", kind="ama")
        self.seed = 0
        self.lock = threading.Lock()

    def new_session(self) -> tuple[Any, Any]:
        from django.test import Client

        from annotator_app.ama.services import session_for_assignment
        from annotator_app.catalog.services import image_import_bytes
        from annotator_app.work.services import assignment_next, campaign_update

        with self.lock:
            self.seed += 1
            seed = self.seed
        image = image_import_bytes(data=sign_png(seed), source_url=f"bench:{seed}").image
        user = self.User.objects.create_user(
            username=f"bench-{uuid.uuid4().hex[:8]}", role=self.Role.ANNOTATOR
        )
        with self.lock:
            campaign_update(campaign=self.campaign, images=[*self.campaign.images.all(), image])
        assignment = assignment_next(user=user, kind="ama", campaign=self.campaign)
        assert assignment is not None
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        return client, session_for_assignment(assignment=assignment)


def wait_answer(round_id: int, timeout: float = 900) -> Any:
    from annotator_app.ama.models import AmaRound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = AmaRound.objects.get(pk=round_id)
        if found.status in ("done", "failed"):
            if found.status == "failed":
                raise SystemExit(f"round {round_id} failed: {found.failure_reason}")
            return found
        time.sleep(0.05)
    raise SystemExit(f"round {round_id} not answered after {timeout:.0f} s")


def one_ask(annotators: Annotators, revisions: int) -> list[tuple[str, float, Any]]:
    from django.db import connection

    from annotator_app.ama.models import AmaRound

    out = []
    try:
        client, session = annotators.new_session()
        started = time.time()
        response = client.post(
            f"/api/v1/ama/sessions/{session.pk}/ask/",
            {"question": "What does the sign say, and when is it open?"},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        current = wait_answer(AmaRound.objects.get(session=session).pk)
        out.append(("first", current.answered_at.timestamp() - started, current))
        for _ in range(revisions):
            started = time.time()
            response = client.post(
                f"/api/v1/ama/rounds/{current.pk}/reject/",
                {"feedback": "Give the exact words and the hours."},
                content_type="application/json",
            )
            assert response.status_code == 201, response.content
            nxt = AmaRound.objects.get(session=session, index=current.index + 1)
            current = wait_answer(nxt.pk)
            out.append(("revision", current.answered_at.timestamp() - started, current))
    finally:
        connection.close()
    return out


def latency(annotators: Annotators, concurrency: int, asks: int, revisions: int) -> None:
    results: list[tuple[str, float, Any]] = []
    lock = threading.Lock()
    remaining = [asks]

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            got = one_ask(annotators, revisions)
            with lock:
                results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    wall = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - wall
    for kind in ("first", "revision"):
        values = [s for k, s, _ in results if k == kind]
        if not values:
            continue
        rounds = [r for k, _, r in results if k == kind]
        parts = {
            "ocr": statistics.mean(r.ocr_ms for r in rounds) / 1000,
            "llm": statistics.mean(r.llm_ms for r in rounds) / 1000,
            "tokens": statistics.mean(r.completion_tokens for r in rounds),
        }
        print(
            f"  {concurrency} annotator(s), {kind} answers: n={len(values)} "
            f"p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
            f"max {max(values):.2f} s; mean OCR {parts['ocr']:.2f} s, LLM {parts['llm']:.2f} s, "
            f"{parts['tokens']:.0f} completion tokens"
        )
    print(f"  {concurrency} annotator(s): {len(results)} answers in {wall:.1f} s wall")


def capqa_bench(captions: int) -> None:
    from annotator_app.ama.capqa import capqa_caption_process, capqa_run_start
    from annotator_app.ama.models import CapQARun
    from annotator_app.catalog.services import image_import_bytes
    from annotator_app.work.models import Campaign
    from tests.ama.helpers import accepted_cap_caption

    campaign = Campaign.objects.create(name=f"bench-cap-{uuid.uuid4().hex[:6]}", kind="cap")
    for n in range(captions):
        image = image_import_bytes(data=sign_png(1000 + n), source_url=f"bench-capqa:{n}").image
        accepted_cap_caption(image, CAPTIONS[n % len(CAPTIONS)], campaign=campaign)
    run, ids = capqa_run_start(campaign=campaign, enqueue=False)
    started = time.monotonic()
    for caption_id in ids:
        capqa_caption_process(run_id=run.pk, caption_id=caption_id)
    minutes = (time.monotonic() - started) / 60
    run = CapQARun.objects.get(pk=run.pk)
    produced = run.pairs_kept + run.pairs_rejected
    share = run.pairs_rejected / produced if produced else 0.0
    reasons = ", ".join(f"{k} {v}" for k, v in Counter(run.rejections).most_common())
    print(
        f"CapQA: {len(ids)} captions in {minutes * 60:.1f} s; {run.pairs_kept} pairs kept "
        f"({run.pairs_kept / minutes:.1f} per minute), {run.pairs_rejected} rejected "
        f"({share:.0%} of {produced} written){'; ' + reasons if reasons else ''}"
    )


def run(args: Any, env: dict[str, str], work: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from annotator_app.celery import QUEUE_NAMES, app

    call_command("migrate", verbosity=0)
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(*QUEUE_NAMES, "unacked", "unacked_index")
    threads = max(args.concurrency)
    log = work / "worker.log"
    cmd = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "annotator_app",
        "worker",
        "-Q",
        "ama",
    ]
    cmd += [
        "--pool",
        "threads",
        "-c",
        str(threads),
        "--without-mingle",
        "--without-gossip",
        "-l",
        "WARNING",
    ]
    with log.open("wb") as out:
        worker = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        print(
            f"LLM {settings.LLM_MODEL} at {settings.OPENAI_BASE_URL}; worker: {threads} threads on "
            f"queue ama; load average at start {os.getloadavg()[0]:.1f}"
        )
        annotators = Annotators()
        one_ask(annotators, 0)  # warm-up: OCR engine and LLM loaded, not counted
        for k in args.concurrency:
            latency(annotators, k, args.asks, args.revisions)
        if args.capqa_captions:
            capqa_bench(args.capqa_captions)
        print(f"load average at end {os.getloadavg()[0]:.1f}")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asks", type=int, default=8, help="sessions per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--revisions", type=int, default=0, help="rejected rounds per session")
    parser.add_argument("--capqa-captions", type=int, default=6)
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()
    runtime_env_defaults()
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
    name = f"pixmo_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="pixmo-ama-bench-"))
    with local_server() if not os.environ.get("OPENAI_BASE_URL") else _given() as llm_url:
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="annotator_app.settings.local",
            DATABASE_URL=base_url.rsplit("/", 1)[0] + f"/{name}",
            REDIS_URL=args.redis_url,
            MEDIA_ROOT=str(work / "media"),
            OPENAI_BASE_URL=llm_url,
            MODEL_SERVICE_URL=os.environ.get("MODEL_SERVICE_URL", ""),
            LOG_LEVEL="WARNING",
        )
        os.environ.update(env)
        from annotator_app.runtime import maintenance_connection

        admin = maintenance_connection(base_url)
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        try:
            run(args, env, work)
        finally:
            from django.db import connections

            connections.close_all()
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
            shutil.rmtree(work, ignore_errors=True)


class _given:
    def __enter__(self) -> str:
        return os.environ["OPENAI_BASE_URL"]

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
