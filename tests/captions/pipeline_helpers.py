"""Rows and audio for the pipeline tests: plain ORM rows, real audio in default storage."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from celery.contrib.testing.worker import start_worker
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotator_app.accounts.models import Role, User
from annotator_app.captions.models import Recording, RecordingStatus
from annotator_app.catalog.models import Image
from annotator_app.celery import QUEUE_NAMES, app
from annotator_app.work.models import Assignment, AssignmentStatus, Campaign, WorkItem
from tests.captions.audio_fixtures import espeak_wav

DESCRIPTION = (
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot "
    "on the left. Above the door a wooden sign says open."
)
KEY_WORDS = {"bicycle", "brick", "wall", "yellow", "flowers", "blue", "door"}

# Sentences for long clips (the crash test needs ASR that runs for a while).
LONG_SENTENCES = [
    "In the middle of the picture a brown dog sleeps on a green carpet.",
    "Behind the dog there is a wooden table with four chairs around it.",
    "On the table stand two white cups, a glass bottle and a bowl of oranges.",
    "The wall at the back is painted light blue and holds a round clock.",
    "To the right a tall window shows trees and a cloudy grey sky.",
    "A red bicycle leans against the window frame next to a small plant.",
    "Near the bottom left corner a pair of black shoes lies on the floor.",
    "A framed poster above the table shows a lighthouse by the sea.",
]


def words_of(text: str) -> set[str]:
    return {w.strip(".,!?'\"").lower() for w in text.split()}


@lru_cache(maxsize=8)
def speech_bytes(text: str = DESCRIPTION, seconds: float = 0.0) -> bytes:
    """WAV bytes of `text` spoken by espeak-ng; with `seconds`, sentences repeat to that length."""
    tmp = Path(f"/tmp/pixmo-pipeline-speech-{uuid.uuid4().hex}.wav")
    try:
        if seconds:
            # espeak-ng at 150 wpm speaks about 2.5 words a second.
            words_needed = int(seconds * 2.5)
            parts: list[str] = []
            i = 0
            while sum(len(p.split()) for p in parts) < words_needed:
                parts.append(LONG_SENTENCES[i % len(LONG_SENTENCES)])
                i += 1
            text = " ".join(parts)
        espeak_wav(tmp, text)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


@lru_cache(maxsize=1)
def silence_bytes(seconds: int = 5) -> bytes:
    tmp = Path(f"/tmp/pixmo-pipeline-silence-{uuid.uuid4().hex}.wav")
    try:
        subprocess.run(
            ["sox", "-n", "-r", "16000", "-c", "1", str(tmp), "trim", "0", str(seconds)],
            check=True,
        )
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def make_campaign(*, overlap: int = 1, images: int = 1) -> tuple[Campaign, list[WorkItem]]:
    """A cap campaign and one work item per new image (slots already taken)."""
    campaign = Campaign.objects.create(
        name=f"cap-{uuid.uuid4().hex[:8]}", kind="cap", overlap=overlap, min_seconds=1
    )
    items = []
    for _ in range(images):
        digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        image = Image.objects.create(
            sha256=digest,
            width=64,
            height=48,
            format="png",
            mime="image/png",
            size_bytes=100,
            storage_key=f"images/test/{digest}.png",
        )
        campaign.images.add(image)
        items.append(WorkItem.objects.create(campaign=campaign, image=image, open_slots=0))
    return campaign, items


def make_annotator() -> User:
    return User.objects.create_user(
        username=f"ann-{uuid.uuid4().hex[:8]}", password="pw-ann-123", role=Role.ANNOTATOR
    )


def make_recording(
    item: WorkItem,
    *,
    audio: bytes | None = None,
    status: str = RecordingStatus.STORED,
    assignment_status: str = AssignmentStatus.SUBMITTED,
    annotator: User | None = None,
) -> Recording:
    """A submitted assignment of `item` and its recording, the audio in default storage."""
    annotator = annotator or make_annotator()
    audio = speech_bytes() if audio is None else audio
    assignment = Assignment.objects.create(item=item, annotator=annotator, status=assignment_status)
    key = default_storage.save(f"recordings/test/{uuid.uuid4().hex}.wav", ContentFile(audio))
    return Recording.objects.create(
        assignment=assignment,
        annotator=annotator,
        campaign=item.campaign,
        image=item.image,
        storage_key=key,
        mime_type="audio/wav",
        size_bytes=len(audio),
        sha256=hashlib.sha256(audio).hexdigest(),
        duration_seconds=len(audio) / 44100,
        idempotency_key=uuid.uuid4().hex,
        status=status,
    )


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll until `condition()` holds; fail naming `what` after `timeout` seconds.

    A liveness guard for work done by another process, not a speed assertion.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def purge_queues() -> None:
    """Empty the pipeline queues (and unacked messages) of the test broker."""
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(*QUEUE_NAMES, "unacked", "unacked_index")


@contextmanager
def worker(queues: str = "default,asr,llm") -> Iterator[None]:
    """A real Celery worker (solo pool, in a thread) on `queues`, with empty queues."""
    purge_queues()
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, queues=queues, shutdown_timeout=60
        ):
            yield
    finally:
        purge_queues()
