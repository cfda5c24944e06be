"""ASR throughput: faster-whisper called directly vs the same clips through the pipeline.

    .venv/bin/python benchmarks/asr_throughput.py [--clips 4] [--batch-sizes 1,4,8]

Both sides transcribe the same espeak-ng clips (60-90 s each) with the WHISPER_*
settings (model, device, compute type, batch size, beam size) and report audio seconds
per wall second; the goal is pipeline / direct >= 0.9.

- direct: one `pipelines.asr.Transcriber`, clips one after another.
- pipeline: a scratch database (created on the DATABASE_URL server, migrated, dropped
  at the end), the broker at --redis-url, one real Celery worker process on queue `asr`
  (prefork, concurrency 1, as deployed), recordings stored as rows with their audio in a
  temporary MEDIA_ROOT and enqueued with `pipeline_start`; the wall time runs from the
  first enqueue to the commit of the last transcript.

Model loading and worker start-up are left out on both sides (a warm-up clip goes
first). `--batch-sizes` also times the direct path at each batch size (the
BatchedInferencePipeline when > 1), which is how the CPU default was chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.speech import description, duration, espeak, require_tools  # noqa: E402


def runtime_env_defaults() -> None:
    """Read var/runtime.env of `make run` like the local settings do (explicit env wins)."""
    path = Path(os.environ.get("PIXMO_VAR_DIR", REPO / "var")) / "runtime.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not os.environ.get(key.strip()):
                os.environ[key.strip()] = value.strip()


def make_clips(folder: Path, count: int) -> list[tuple[Path, float]]:
    clips = []
    for i in range(count):
        target = 60 + 10 * (i % 4)  # 60, 70, 80, 90 s
        # espeak-ng's default speed is nearer 180 words a minute than its nominal 150.
        path = espeak(folder / f"clip{i}.wav", description(target, seed=i, wpm=180))
        clips.append((path, duration(path)))
    return clips


def direct(clips: list[tuple[Path, float]], warmup: Path, batch_size: int) -> float:
    from annotator_app.captions.pipeline import transcriber_from_settings

    transcriber = transcriber_from_settings(batch_size=batch_size)
    transcriber.transcribe(warmup)
    start = time.perf_counter()
    for path, _ in clips:
        transcriber.transcribe(path)
    return time.perf_counter() - start


def create_recordings(paths: list[Path]) -> list[int]:
    """Rows as the upload would leave them: a submitted assignment and a stored recording."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from annotator_app.accounts.models import User
    from annotator_app.captions.models import Recording
    from annotator_app.catalog.models import Image
    from annotator_app.work.models import Assignment, Campaign, WorkItem

    campaign = Campaign.objects.create(name=f"bench-{uuid.uuid4().hex[:8]}", kind="cap")
    ids = []
    for path in paths:
        data = path.read_bytes()
        digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        image = Image.objects.create(
            sha256=digest, width=1, height=1, format="png", mime="image/png",
            size_bytes=1, storage_key=f"images/bench/{digest}.png",
        )  # fmt: skip
        item = WorkItem.objects.create(campaign=campaign, image=image, open_slots=0)
        user = User.objects.create_user(username=f"bench-{uuid.uuid4().hex[:8]}")
        assignment = Assignment.objects.create(item=item, annotator=user, status="submitted")
        key = default_storage.save(f"recordings/bench/{uuid.uuid4().hex}.wav", ContentFile(data))
        ids.append(
            Recording.objects.create(
                assignment=assignment, annotator=user, campaign=campaign, image=image,
                storage_key=key, mime_type="audio/wav", size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), duration_seconds=duration(path),
                idempotency_key=uuid.uuid4().hex,
            ).id
        )  # fmt: skip
    return ids


def wait_transcribed(ids: list[int], timeout: float) -> None:
    from annotator_app.captions.models import Recording

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = Recording.objects.filter(id__in=ids, status__in=("stored", "transcribing"))
        if not left.exists():
            failed = Recording.objects.filter(id__in=ids, status="failed")
            if failed.exists():
                raise SystemExit(f"ASR failed: {list(failed.values_list('failure_reason'))}")
            return
        time.sleep(0.1)
    raise SystemExit(f"recordings {ids} not transcribed after {timeout:.0f} s")


def through_pipeline(clips: list[tuple[Path, float]], warmup: Path, env: dict[str, str]) -> float:
    from annotator_app.captions.models import Transcript
    from annotator_app.captions.pipeline import pipeline_start

    log = Path(env["MEDIA_ROOT"]).parent / "worker.log"
    cmd = [str(Path(sys.executable).with_name("celery")), "-A", "annotator_app", "worker"]
    cmd += ["-Q", "asr", "-c", "1", "--without-mingle", "--without-gossip", "-l", "WARNING"]
    with log.open("wb") as out:
        worker = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        (warm_id,) = create_recordings([warmup])
        pipeline_start(warm_id)
        wait_transcribed([warm_id], timeout=300)
        ids = create_recordings([path for path, _ in clips])
        start = time.time()
        for rid in ids:
            pipeline_start(rid)
        wait_transcribed(ids, timeout=600 + 10 * sum(d for _, d in clips))
        last = max(t.created_at.timestamp() for t in Transcript.objects.filter(recording__in=ids))
        return last - start
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="number of 60-90 s clips")
    parser.add_argument("--batch-sizes", default="", help="also time direct at these, e.g. 1,4,8")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
        help="broker for the benchmark's own worker (keep it apart from a running platform)",
    )
    args = parser.parse_args()
    require_tools()
    runtime_env_defaults()
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
    name = f"pixmo_bench_{uuid.uuid4().hex[:8]}"
    scratch_url = base_url.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="pixmo-asr-bench-"))
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="annotator_app.settings.local",
        DATABASE_URL=scratch_url,
        REDIS_URL=args.redis_url,
        MEDIA_ROOT=str(work / "media"),
        LOG_LEVEL="WARNING",
    )
    os.environ.update(env)

    from annotator_app.runtime import maintenance_connection

    admin = maintenance_connection(base_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        run(args, work, env)
    finally:
        from django.db import connections

        connections.close_all()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


def run(args: Any, work: Path, env: dict[str, str]) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from annotator_app.celery import QUEUE_NAMES, app

    call_command("migrate", verbosity=0)
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(*QUEUE_NAMES, "unacked", "unacked_index")
    warmup = espeak(work / "warmup.wav", description(5, seed=99))
    clips = make_clips(work, args.clips)
    audio = sum(d for _, d in clips)
    print(
        f"model {settings.WHISPER_MODEL} on {settings.WHISPER_DEVICE} "
        f"({settings.WHISPER_COMPUTE_TYPE}), batch size {settings.WHISPER_BATCH_SIZE}, "
        f"beam {settings.WHISPER_BEAM_SIZE}; {len(clips)} clips, {audio:.1f} s of audio "
        f"({', '.join(f'{d:.0f}' for _, d in clips)} s)"
    )
    for size in [int(s) for s in args.batch_sizes.split(",") if s.strip()]:
        wall = direct(clips, warmup, size)
        print(f"direct, batch size {size}: {wall:.1f} s wall, {audio / wall:.2f} audio-s/s")
    direct_wall = direct(clips, warmup, settings.WHISPER_BATCH_SIZE)
    pipeline_wall = through_pipeline(clips, warmup, env)
    direct_rate, pipeline_rate = audio / direct_wall, audio / pipeline_wall
    print(f"direct:   {direct_wall:.1f} s wall, {direct_rate:.2f} audio-s/s")
    print(f"pipeline: {pipeline_wall:.1f} s wall, {pipeline_rate:.2f} audio-s/s")
    print(f"ratio pipeline/direct: {pipeline_rate / direct_rate:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
