"""Live guidance while speaking (P12): the growing take's audio, its live text, coverage.

What happens while an annotator records with live guidance on: the page posts each new
MediaRecorder chunk (`live_append`) with the byte offset it starts at; the bytes are
appended in Redis under the assignment, and one step of `captions.live_step` is queued
on the `live` queue unless one is queued or running for this take already. The step
(`live_run_step`, in the live worker) decodes only the audio after the committed text
(pipelines.live_asr) and stores the new text; when it ends it queues itself again if
more audio came meanwhile. So each speaker has at most one step waiting or running, and
each step decodes at most LIVE_MAX_WINDOW_SECONDS: a busy or dead live worker makes the
text lag (the page says "live transcript paused"), never the `asr` queue.

Every answer to the page is the take's current view (`live_view`): text, coverage of
the seven questions (pipelines.coverage) and whether the text is behind. At submit,
`live_coverage_at_submit` turns the take's live text into the coverage stored on the
Recording. Redis holds it all, with expiry: nothing here is the annotator's work (the
audio is kept in the browser and uploaded whole), so losing it loses only guidance.

Keys, one set per assignment (a new take replaces the old one):
    live:<assignment>:meta   hash: take, user, received_ms, final
    live:<assignment>:audio  the take's bytes so far
    live:<assignment>:state  JSON of pipelines.live_asr.LiveText
    live:<assignment>:queued a step is waiting or running (expires with the task)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from annotator_app.captions import queueing
from annotator_app.captions.models import Recording
from annotator_app.work.errors import CLIENT_KEY, Refused
from annotator_app.work.models import Assignment, AssignmentStatus, CampaignKind
from pipelines.audio import sniff_container
from pipelines.coverage import coverage_of
from pipelines.live_asr import LiveAudioError, LiveText, SpeechModel, live_step

logger = logging.getLogger(__name__)

# After a step: queue the next one if the audio grew while it ran, else clear the flag.
# One script, so a chunk appended at the same moment is never left without a step.
_AFTER_STEP = """
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) or redis.call('HGET', KEYS[2], 'final') == '1' and ARGV[2] == '0' then
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
  return 1
end
redis.call('DEL', KEYS[3])
return 0
"""


class LiveError(Refused):
    """A live request is refused (see work/errors.py)."""


class LiveNotFound(LiveError):
    status_code = 404


class LiveConflict(LiveError):
    status_code = 409


class LiveTooLarge(LiveError):
    status_code = 413


@dataclass(frozen=True)
class _Keys:
    meta: str
    audio: str
    state: str
    queued: str

    @classmethod
    def of(cls, assignment_id: int) -> _Keys:
        base = f"live:{assignment_id}"
        return cls(f"{base}:meta", f"{base}:audio", f"{base}:state", f"{base}:queued")


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=5)
        return _clients[url]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


# --- the page's side -----------------------------------------------------------------------


def live_check_assignment(*, user: Any, assignment_id: int) -> Assignment:
    """The user's leased cap assignment whose campaign has live guidance on."""
    assignment = (
        Assignment.objects.select_related("item__campaign")
        .filter(pk=assignment_id, annotator_id=user.pk)
        .first()
    )
    if assignment is None:
        raise LiveNotFound(f"assignment {assignment_id} not found")
    campaign = assignment.item.campaign
    if campaign.kind != CampaignKind.CAP:
        raise LiveError(f"assignment {assignment_id} is not a spoken-description assignment")
    if not campaign.live_guidance:
        raise LiveConflict(f"live guidance is off for campaign {campaign.name!r}")
    if assignment.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
        raise LiveConflict(f"assignment {assignment_id} is {assignment.status}, not leased")
    if Recording.objects.filter(assignment_id=assignment_id).exists():
        raise LiveConflict(f"assignment {assignment_id} already has a recording")
    return assignment


def _check_take(take: str) -> None:
    if not CLIENT_KEY.match(take or ""):
        raise LiveError("take must be 8-64 letters, digits, - or _ (the recording's key)")


def live_append(
    *,
    user: Any,
    assignment_id: int,
    take: str,
    offset: int,
    data: bytes,
    received_ms: int,
    final: bool = False,
) -> dict[str, Any]:
    """Append one chunk of a take's audio at byte `offset`; queue a step; return the view.

    Offset 0 starts a take (replacing the assignment's earlier one); any other offset
    must equal the bytes already held (409 with `expected_offset` otherwise, so the page
    resends from there).
    """
    _check_take(take)
    if offset < 0 or received_ms < 0:
        raise LiveError("offset and received_ms must be 0 or more")
    submitted = Recording.objects.filter(
        assignment_id=assignment_id, annotator_id=user.pk, idempotency_key=take
    ).exists()
    if submitted:  # a last chunk that arrives after its take was submitted: nothing to do
        return live_view(assignment_id=assignment_id, take=take)
    live_check_assignment(user=user, assignment_id=assignment_id)
    keys = _Keys.of(assignment_id)
    client = _redis()
    current_take = _text(client.hget(keys.meta, "take"))
    if offset == 0:
        if not data:
            raise LiveError("the first chunk of a take is empty")
        if sniff_container(data) is None:
            raise LiveError("the first chunk does not start like WebM, Ogg, MP4 or WAV audio")
        # A new take: forget the old one (a step of it still queued finds it superseded).
        client.delete(keys.meta, keys.audio, keys.state, keys.queued)
        current_take = take
    elif current_take != take:
        raise LiveConflict("this take is not the assignment's current one", expected_offset=0)
    held = int(client.strlen(keys.audio)) if offset else 0
    if offset != held:
        raise LiveConflict(
            f"chunk starts at byte {offset}, but {held} bytes are held", expected_offset=held
        )
    if held + len(data) > settings.LIVE_MAX_BYTES:
        raise LiveTooLarge(
            f"live guidance keeps at most {settings.LIVE_MAX_BYTES} bytes of a take; "
            "recording goes on without it"
        )
    ttl = settings.LIVE_STATE_TTL_SECONDS
    with client.pipeline() as pipe:
        pipe.append(keys.audio, data)
        pipe.hset(
            keys.meta,
            mapping={
                "take": take,
                "user": str(user.pk),
                "received_ms": str(received_ms),
                "final": "1" if final else "0",
            },
        )
        for key in (keys.meta, keys.audio):
            pipe.expire(key, ttl)
        pipe.execute()
    queue_note = _queue_step(client, keys, assignment_id=assignment_id, take=take)
    return live_view(assignment_id=assignment_id, take=take, note=queue_note)


def _queue_step(client: redis.Redis, keys: _Keys, *, assignment_id: int, take: str) -> str:
    """Queue a step unless one waits or runs for this take; a note when that failed."""
    expires = settings.LIVE_TASK_EXPIRES_SECONDS
    if not client.set(keys.queued, take, nx=True, ex=expires):
        return ""
    try:
        queueing.enqueue_live_step(assignment_id, take, expires=expires)
    except Exception as exc:  # the broker is down: live text pauses, recording goes on
        client.delete(keys.queued)
        logger.warning("live step not queued for assignment %s: %s", assignment_id, exc)
        return "the live queue is unavailable"
    return ""


def live_view(*, assignment_id: int, take: str, note: str = "") -> dict[str, Any]:
    """What the page shows: the live text, the coverage, and whether it is behind."""
    client = _redis()
    keys = _Keys.of(assignment_id)
    meta = {_text(k): _text(v) for k, v in client.hgetall(keys.meta).items()}
    if meta.get("take") != take:
        state = LiveText()
        received = 0.0
    else:
        state = LiveText.from_dict(json.loads(client.get(keys.state) or "null"))
        received = int(meta.get("received_ms") or 0) / 1000
    lag = max(0.0, received - state.heard_until)
    paused = bool(note) or lag > settings.LIVE_MAX_LAG_SECONDS
    if paused and not note:
        note = f"the live text is {lag:.0f} s behind the recording"
    return {
        "take": take,
        "text": state.text,
        "committed": state.committed,
        "tentative": state.tentative,
        "coverage": coverage_of(state.text).to_dict(),
        "received_seconds": round(received, 2),
        "heard_seconds": round(state.heard_until, 2),
        "shown_seconds": round(state.shown_until, 2),
        "lag_seconds": round(lag, 2),
        "paused": paused,
        "paused_reason": note if paused else "",
        "steps": state.steps,
    }


def live_get(*, user: Any, assignment_id: int, take: str) -> dict[str, Any]:
    """The view of the user's own take (404 for others' assignments)."""
    _check_take(take)
    assignment = (
        Assignment.objects.filter(pk=assignment_id, annotator_id=user.pk)
        .select_related("item__campaign")
        .first()
    )
    if assignment is None:
        raise LiveNotFound(f"assignment {assignment_id} not found")
    view = live_view(assignment_id=assignment_id, take=take)
    if view["received_seconds"] > view["heard_seconds"] + 0.5 or view["tentative"]:
        # Audio is waiting but its step may have expired unstarted (a worker that was
        # down or busy): queue one, unless one is queued or running already.
        keys = _Keys.of(assignment_id)
        if _text(_redis().hget(keys.meta, "take")) == take:
            _queue_step(_redis(), keys, assignment_id=assignment_id, take=take)
    return view


# --- the live worker's side ----------------------------------------------------------------


def live_run_step(*, assignment_id: int, take: str, model: SpeechModel) -> str:
    """One step of a take's live transcript (the `captions.live_step` task)."""
    client = _redis()
    keys = _Keys.of(assignment_id)
    meta = {_text(k): _text(v) for k, v in client.hgetall(keys.meta).items()}
    if meta.get("take") != take:
        if _text(client.get(keys.queued)) == take:
            client.delete(keys.queued)
        return "superseded"
    raw = client.get(keys.audio) or b""
    data = raw if isinstance(raw, bytes) else raw.encode()
    final = meta.get("final") == "1"
    state = LiveText.from_dict(json.loads(client.get(keys.state) or "null"))
    started = time.perf_counter()
    try:
        new_state = live_step(
            model,
            data,
            state,
            max_window=float(settings.LIVE_MAX_WINDOW_SECONDS),
            min_tail_step=settings.LIVE_MIN_STEP_SECONDS,
            final=final,
        )
    except LiveAudioError as exc:
        client.delete(keys.queued)
        logger.info("live audio of assignment %s not decodable: %s", assignment_id, exc)
        return f"undecodable: {exc}"
    # The take may have been replaced while this step ran: then its text is dropped.
    if _text(client.hget(keys.meta, "take")) == take:
        client.set(keys.state, json.dumps(new_state.to_dict()), ex=settings.LIVE_STATE_TTL_SECONDS)
    again = client.eval(
        _AFTER_STEP,
        3,
        keys.audio,
        keys.meta,
        keys.queued,
        len(data),
        "1" if final else "0",
        settings.LIVE_TASK_EXPIRES_SECONDS,
    )
    if again:
        queueing.enqueue_live_step(assignment_id, take, expires=settings.LIVE_TASK_EXPIRES_SECONDS)
    return f"{new_state.heard_until:.1f} s heard in {time.perf_counter() - started:.2f} s"


# --- at submit -----------------------------------------------------------------------------


def live_coverage_at_submit(*, assignment_id: int, take: str) -> dict[str, Any] | None:
    """The coverage of the take's live text, for the Recording; None without live text.

    Never raises: live guidance must not stand between an annotator and a submit.
    """
    try:
        client = _redis()
        keys = _Keys.of(assignment_id)
        if _text(client.hget(keys.meta, "take")) != take:
            return None
        state = LiveText.from_dict(json.loads(client.get(keys.state) or "null"))
        client.delete(keys.audio, keys.queued)  # the audio is uploaded whole now
    except Exception:
        logger.exception("live coverage of assignment %s not read", assignment_id)
        return None
    if not state.text:
        return None
    coverage = coverage_of(state.text).to_dict()
    coverage["live_seconds"] = round(state.heard_until, 2)
    return coverage
