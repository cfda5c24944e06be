"""A real Celery worker process killed with SIGKILL in the middle of ASR.

The message was acked late, so Redis still holds it; once its visibility timeout has
passed, the next worker restores it (marked redelivered), takes over the abandoned
`transcribing` row, and the recording ends transcribed with exactly one transcript.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from annotator_app.captions import pipeline
from annotator_app.captions.models import Recording, RecordingStatus, Transcript
from tests.captions.pipeline_helpers import (
    make_campaign,
    make_recording,
    purge_queues,
    speech_bytes,
    wait_until,
    words_of,
)

VISIBILITY_TIMEOUT = 4
CELERY = str(Path(sys.executable).with_name("celery"))


def worker_env(tmp_path: Path) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "annotator_app.settings.local",
            "DATABASE_URL": (f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"),
            "REDIS_URL": settings.REDIS_URL,
            "PIXMO_VAR_DIR": str(tmp_path / "var"),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        }
    )
    return env


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [CELERY, "-A", "annotator_app", "worker", "-Q", "asr", "-c", "1", "-n", f"{name}@%h"]
    cmd += ["--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    with log.open("ab") as out:
        # Its own session: SIGKILL reaches the pool child too, like a machine dying.
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_asr_transcribes_exactly_once_after_redelivery(tmp_path) -> None:
    _, (item,) = make_campaign()
    rec = make_recording(item, audio=speech_bytes(seconds=80))
    purge_queues()
    env = worker_env(tmp_path)
    log = tmp_path / "worker.log"
    first = start_worker("doomed", env, log)
    second = None
    try:
        pipeline.pipeline_start(rec.id)
        wait_until(
            lambda: Recording.objects.get(id=rec.id).status == RecordingStatus.TRANSCRIBING,
            timeout=90,
            what=f"the first worker to claim the recording (log: {log.read_text()[-2000:]})",
        )
        claimed_at = time.monotonic()
        time.sleep(1.0)  # well inside decoding an 80 s clip
        assert Recording.objects.get(id=rec.id).status == RecordingStatus.TRANSCRIBING, (
            "ASR finished before the kill; the clip is too short for this machine"
        )
        stop(first)
        assert not Transcript.objects.filter(recording=rec).exists()

        # Redis restores unacked messages older than the visibility timeout when a
        # worker starts; wait that long so the restart finds the message ripe.
        time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - claimed_at)))
        second = start_worker("heir", env, log)
        wait_until(
            lambda: Recording.objects.get(id=rec.id).status != RecordingStatus.TRANSCRIBING,
            timeout=300,
            what=f"the redelivered ASR task (log: {log.read_text()[-3000:]})",
        )
    finally:
        stop(first)
        if second is not None:
            stop(second, signal.SIGTERM)
        purge_queues()

    rec.refresh_from_db()
    assert rec.status == RecordingStatus.TRANSCRIBED, rec.failure_reason
    assert Transcript.objects.filter(recording=rec).count() == 1
    assert {"dog", "table", "window", "bicycle"} <= words_of(rec.transcript.text)
    assert "took over a transcribing run" in log.read_text()
