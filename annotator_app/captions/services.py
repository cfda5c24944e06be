"""Captions writes: accepting a spoken description (the upload of a recording).

What happens when an annotator presses "Submit description": `recording_submit` checks
the request in order (idempotent replay, whose assignment, its state, size, the bytes
decode as audio, duration within the campaign's bounds), stores the file durably, stores
a seekable copy beside it for players (browser WebM has no duration or seek index), then
saves the Recording row and submits the assignment in one transaction, and enqueues the
pipeline once that transaction commits. Every refusal raises a RecordingError carrying
an HTTP status and a message naming the problem; a refused upload leaves no file and no
row behind.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotator_app.captions.live import live_coverage_at_submit
from annotator_app.captions.models import Recording
from annotator_app.work.errors import CLIENT_KEY, Refused
from annotator_app.work.models import Assignment, AssignmentStatus, CampaignKind
from annotator_app.work.services import AssignmentStateError, assignment_submit
from pipelines.audio import AudioInfo, AudioRejected, inspect_audio
from pipelines.playback import PlaybackError, needs_seekable_copy, seekable_webm

logger = logging.getLogger(__name__)

MAX_ACTIVE_SECONDS = 24 * 3600


class RecordingError(Refused):
    """An upload is refused (see work/errors.py)."""


class RecordingInvalid(RecordingError):
    """The request or its audio is unacceptable (400)."""


class RecordingTooLarge(RecordingError):
    """The audio file is over RECORDING_MAX_BYTES (413)."""

    status_code = 413


class RecordingNotFound(RecordingError):
    """No such assignment for this user (404: others' assignments are not revealed)."""

    status_code = 404


class RecordingConflict(RecordingError):
    """The assignment cannot take this recording now, or the key is used elsewhere (409)."""

    status_code = 409


@dataclass(frozen=True)
class SubmitResult:
    recording: Recording
    created: bool  # False: an earlier upload with the same idempotency key


def recording_storage_key(*, info: AudioInfo, now: Any = None) -> str:
    """`audio/<yyyy>/<mm>/<sha256>-<uuid>.<ext>`: unique per upload, never overwritten."""
    now = now or timezone.now()
    return f"audio/{now:%Y}/{now:%m}/{info.sha256}-{uuid.uuid4().hex}.{info.extension}"


def _replay(*, user: Any, assignment_id: int, idempotency_key: str) -> Recording | None:
    """The recording an earlier upload with this key made, if it is this same upload."""
    existing = Recording.objects.filter(idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if existing.annotator_id != user.pk or existing.assignment_id != assignment_id:
        raise RecordingConflict(
            "this Idempotency-Key was already used for a different upload; "
            "generate a new key for each recording"
        )
    return existing


def _check_assignment(*, user: Any, assignment_id: int) -> Assignment:
    assignment = (
        Assignment.objects.select_related("item__campaign", "item__image")
        .filter(pk=assignment_id, annotator_id=user.pk)
        .first()
    )
    if assignment is None:
        raise RecordingNotFound(f"assignment {assignment_id} not found")
    if assignment.item.campaign.kind != CampaignKind.CAP:
        raise RecordingInvalid(
            f"assignment {assignment_id} belongs to a {assignment.item.campaign.kind} "
            "campaign, which takes no recordings"
        )
    if assignment.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
        raise RecordingConflict(
            f"assignment {assignment_id} is {assignment.status}, not leased: "
            "it takes no new recording"
        )
    if Recording.objects.filter(assignment_id=assignment_id).exists():
        raise RecordingConflict(f"assignment {assignment_id} already has a recording")
    return assignment


def _check_audio(*, data: bytes, assignment: Assignment) -> AudioInfo:
    limit = settings.RECORDING_MAX_BYTES
    if not data:
        raise RecordingInvalid("the audio file is empty")
    if len(data) > limit:
        raise RecordingTooLarge(f"the audio file is {len(data)} bytes; the limit is {limit}")
    try:
        info = inspect_audio(
            data,
            max_bytes=limit,
            min_sample_rate=settings.AUDIO_MIN_SAMPLE_RATE,
            max_sample_rate=settings.AUDIO_MAX_SAMPLE_RATE,
        )
    except AudioRejected as exc:
        raise RecordingInvalid(f"the audio was refused: {exc.reason}") from None
    campaign = assignment.item.campaign
    slack = settings.RECORDING_DURATION_TOLERANCE_MS / 1000
    if info.duration_seconds < campaign.min_seconds - slack:
        raise RecordingInvalid(
            f"the recording is {info.duration_seconds:.1f} s long; this campaign needs at "
            f"least {campaign.min_seconds} s"
        )
    if info.duration_seconds > campaign.max_seconds + slack:
        raise RecordingInvalid(
            f"the recording is {info.duration_seconds:.1f} s long; this campaign accepts at "
            f"most {campaign.max_seconds} s"
        )
    return info


def _check_active_seconds(active_seconds: int | None) -> None:
    if active_seconds is not None and not 0 <= active_seconds <= MAX_ACTIVE_SECONDS:
        raise RecordingInvalid(f"active_seconds must be between 0 and {MAX_ACTIVE_SECONDS}")


def _store_durably(*, key: str, data: bytes) -> str:
    """Write the file; on a local disk also fsync it and its folder before returning."""
    saved = default_storage.save(key, ContentFile(data))
    try:
        path = default_storage.path(saved)
    except NotImplementedError:
        return saved  # S3: the PUT has returned, the object is durable
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    folder = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return saved


def _discard(key: str) -> None:
    try:
        default_storage.delete(key)
    except Exception:
        logger.exception("could not delete the orphan audio file %s", key)


def playback_key_for(storage_key: str) -> str:
    """Where the seekable copy of the file at `storage_key` is stored."""
    return f"{storage_key.rsplit('.', 1)[0]}.play.webm"


def _store_playback_copy(*, storage_key: str, data: bytes, container: str) -> str:
    """Store a seekable copy beside the upload; "" when none is needed or remuxing fails
    (the original still plays, only without seeking: never a reason to refuse work)."""
    if not needs_seekable_copy(container):
        return ""
    try:
        copy = seekable_webm(data)
    except PlaybackError as exc:
        logger.warning("no seekable copy of %s: %s", storage_key, exc)
        return ""
    return _store_durably(key=playback_key_for(storage_key), data=copy)


def recording_make_seekable(*, recording: Recording) -> str:
    """Give an older recording its seekable copy (once); returns its key, "" if none."""
    if recording.playback_key:
        return recording.playback_key
    container = "webm" if recording.mime_type in ("audio/webm", "audio/x-matroska") else ""
    with default_storage.open(recording.storage_key, "rb") as handle:
        data = handle.read()
    key = _store_playback_copy(storage_key=recording.storage_key, data=data, container=container)
    if key and not Recording.objects.filter(pk=recording.pk, playback_key="").update(
        playback_key=key
    ):
        _discard(key)  # another run stored one first
        recording.refresh_from_db(fields=["playback_key"])
        return recording.playback_key
    recording.playback_key = key
    return key


def _discard_all(*keys: str) -> None:
    for key in keys:
        if key:
            _discard(key)


def _enqueue_pipeline(recording_id: int) -> None:
    from annotator_app.captions import pipeline

    pipeline.pipeline_start(recording_id)


def recording_submit(
    *,
    user: Any,
    assignment_id: int,
    data: bytes,
    idempotency_key: str,
    active_seconds: int | None = None,
) -> SubmitResult:
    """Accept one spoken description for the user's leased cap assignment.

    A repeated upload with the same idempotency key returns the first one's recording
    (created=False) and changes nothing, also when two arrive at once: the unique key
    decides, and the loser deletes the file it wrote.
    """
    if not CLIENT_KEY.match(idempotency_key or ""):
        raise RecordingInvalid(
            "the Idempotency-Key header is missing or malformed (8-64 letters, digits, - or _)"
        )
    existing = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
    if existing is not None:
        return SubmitResult(existing, created=False)
    _check_active_seconds(active_seconds)
    try:
        assignment = _check_assignment(user=user, assignment_id=assignment_id)
    except RecordingConflict:
        # A simultaneous upload with this key may have committed since the first look.
        raced = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
        if raced is None:
            raise
        return SubmitResult(raced, created=False)
    info = _check_audio(data=data, assignment=assignment)
    live_coverage = None
    if assignment.item.campaign.live_guidance:
        # The take's live text was kept under its idempotency key (captions/live.py).
        live_coverage = live_coverage_at_submit(assignment_id=assignment_id, take=idempotency_key)
    key = _store_durably(key=recording_storage_key(info=info), data=data)
    playback = ""
    try:
        playback = _store_playback_copy(storage_key=key, data=data, container=info.container)
        with transaction.atomic():
            recording = Recording.objects.create(
                assignment=assignment,
                annotator_id=user.pk,
                campaign_id=assignment.item.campaign_id,
                image_id=assignment.item.image_id,
                storage_key=key,
                playback_key=playback,
                mime_type=info.mime_type,
                size_bytes=info.size_bytes,
                sha256=info.sha256,
                duration_seconds=info.duration_seconds,
                idempotency_key=idempotency_key,
                live_coverage=live_coverage,
            )
            assignment_submit(assignment=assignment, active_seconds=active_seconds)
            # robust: a broker hiccup must not undo a committed upload; the sweeper
            # re-enqueues recordings whose task never ran.
            transaction.on_commit(lambda: _enqueue_pipeline(recording.pk), robust=True)
    except IntegrityError:
        _discard_all(key, playback)
        raced = _replay(user=user, assignment_id=assignment_id, idempotency_key=idempotency_key)
        if raced is not None:
            return SubmitResult(raced, created=False)
        raise RecordingConflict(f"assignment {assignment_id} already has a recording") from None
    except AssignmentStateError as exc:
        _discard_all(key, playback)
        raise RecordingConflict(f"assignment {assignment_id}: {exc}") from None
    except BaseException:
        _discard_all(key, playback)
        raise
    return SubmitResult(recording, created=True)
