"""Captions reads: a recording with its texts and review marks, an annotator's history,
audio access."""

from __future__ import annotations

import difflib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse

from annotator_app.accounts.permissions import owns
from annotator_app.captions.models import ImageSummary, Recording, RecordingStatus, Transcript
from annotator_app.captions.pipeline import caption_uses_llm
from annotator_app.catalog.media_access import MediaGrant
from annotator_app.work.models import AssignmentStatus, Campaign, CampaignKind
from annotator_app.work.selectors import campaigns_reviewable_by, can_review_campaign


def _recordings() -> QuerySet[Recording]:
    return Recording.objects.select_related(
        "transcript", "transcript__cleaned", "image", "campaign"
    )


def recording_visible_to(user: Any, recording: Recording) -> bool:
    """Its annotator, the reviewers of its campaign, and admins."""
    if not getattr(user, "is_authenticated", False):
        return False
    return owns(user, recording) or can_review_campaign(user, recording.campaign)


def recording_get_visible(*, user: Any, recording_id: int) -> Recording | None:
    """The recording when this user may see it, else None (the API answers 404)."""
    recording = _recordings().filter(pk=recording_id).first()
    if recording is None or not recording_visible_to(user, recording):
        return None
    return recording


def recording_list_own(*, user: Any) -> QuerySet[Recording]:
    """The user's own recordings, newest first, with their transcripts and captions."""
    return (
        _recordings()
        .select_related("assignment")
        .filter(annotator_id=user.pk)
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class MarkedWord:
    """A word as shown to a reviewer; `probability` is set where the ASR was unsure;
    `changed`: the cleaning removed it (transcript) or wrote it (caption)."""

    text: str
    probability: float | None = None
    changed: bool = False

    @property
    def uncertain(self) -> bool:
        return self.probability is not None


@dataclass(frozen=True)
class ReviewMarks:
    """What the review page points out beside the texts (see _quality_marks.html)."""

    transcript_words: list[MarkedWord] = field(default_factory=list)
    caption_words: list[MarkedWord] = field(default_factory=list)
    caption_flags: list[str] = field(default_factory=list)
    caption_fallback: bool = False
    caption_model: str = ""
    summary_flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecordingTexts:
    transcript: str | None  # None until the ASR stage has written one
    caption: str | None  # None until the cleaning stage has written one
    marks: ReviewMarks = field(default_factory=ReviewMarks)


def _key(word: str) -> str:
    return word.strip(".,!?;:\"'()").lower()


def _marked_transcript(transcript: Transcript, below: float) -> list[MarkedWord]:
    """The transcript's words, those the ASR gave less than `below` carrying their score."""
    words = [w for w in transcript.words or [] if str(w.get("word", "")).strip()]
    if not words:
        return [MarkedWord(t) for t in transcript.text.split()]
    return [
        MarkedWord(
            str(w["word"]).strip(),
            round(float(w["probability"]), 2) if float(w.get("probability", 1)) < below else None,
        )
        for w in words
    ]


def _marked_caption(caption: str, unsure: dict[str, float]) -> list[MarkedWord]:
    return [MarkedWord(t, unsure.get(_key(t))) for t in caption.split()]


def _mark_differences(
    transcript: list[MarkedWord], caption: list[MarkedWord]
) -> tuple[list[MarkedWord], list[MarkedWord]]:
    """Mark the words the cleaning removed from the transcript and wrote into the caption
    (compared without case and punctuation, so "um," -> "" and "a" -> "A" read right)."""
    matcher = difflib.SequenceMatcher(
        a=[_key(w.text) for w in transcript], b=[_key(w.text) for w in caption], autojunk=False
    )
    removed, added = set(range(len(transcript))), set(range(len(caption)))
    for block in matcher.get_matching_blocks():
        removed -= set(range(block.a, block.a + block.size))
        added -= set(range(block.b, block.b + block.size))
    return (
        [replace(w, changed=i in removed) for i, w in enumerate(transcript)],
        [replace(w, changed=i in added) for i, w in enumerate(caption)],
    )


def recording_texts(*, recording: Recording) -> RecordingTexts:
    """The transcript and cleaned caption texts, where those stages have run, with the
    words the ASR was unsure of and the flags a reviewer should see."""
    transcript = getattr(recording, "transcript", None)
    if transcript is None:
        return RecordingTexts(None, None)
    below = float(settings.ASR_UNCERTAIN_BELOW)
    marked = _marked_transcript(transcript, below)
    unsure = {_key(w.text): w.probability for w in marked if w.probability is not None}
    cleaned = getattr(transcript, "cleaned", None)
    if cleaned is None:
        return RecordingTexts(transcript.text, None, ReviewMarks(transcript_words=marked))
    summary = (
        ImageSummary.objects.filter(
            campaign_id=recording.campaign_id, image_id=recording.image_id, flagged=True
        )
        .values_list("flag_reasons", flat=True)
        .first()
    )
    transcript_words, caption_words = _mark_differences(
        marked, _marked_caption(cleaned.text, unsure)
    )
    marks = ReviewMarks(
        transcript_words=transcript_words,
        caption_words=caption_words,
        caption_flags=list(cleaned.flag_reasons) if cleaned.flagged else [],
        caption_fallback=cleaned.used_fallback,
        caption_model=cleaned.model_name,
        summary_flags=list(summary or []),
    )
    return RecordingTexts(transcript.text, cleaned.text, marks)


def recording_audio_url(*, recording: Recording, request: HttpRequest | None = None) -> str:
    """The permission-checked URL that plays this recording: its seekable copy if made."""
    path = reverse("media", kwargs={"key": recording.playback_key or recording.storage_key})
    return request.build_absolute_uri(path) if request is not None else path


def recording_media_grant(user: Any, key: str) -> MediaGrant | None:
    """Media checker for "audio/": whoever may see the recording (see recording_visible_to)."""
    if not getattr(user, "is_authenticated", False):
        return None
    recording = (
        Recording.objects.select_related("campaign")
        .filter(Q(storage_key=key) | Q(playback_key=key))
        .first()
    )
    if recording is None or not recording_visible_to(user, recording):
        return None
    if key == recording.playback_key:
        return MediaGrant(content_type="audio/webm", filename=f"recording-{recording.pk}.webm")
    extension = recording.storage_key.rsplit(".", 1)[-1]
    return MediaGrant(
        content_type=recording.mime_type, filename=f"recording-{recording.pk}.{extension}"
    )


def cap_campaigns_to_review(*, user: Any) -> QuerySet[Campaign]:
    """The cap campaigns this user reviews, each with `awaiting` submitted recordings."""
    return (
        campaigns_reviewable_by(user)
        .filter(kind=CampaignKind.CAP)
        .annotate(
            awaiting=Count(
                "recordings",
                filter=Q(recordings__assignment__status=AssignmentStatus.SUBMITTED),
            )
        )
        .order_by("-priority", "id")
    )


def recordings_awaiting_review(*, campaign: Campaign) -> QuerySet[Recording]:
    """Recordings of a campaign whose assignment waits for a verdict, oldest first."""
    return (
        _recordings()
        .select_related("annotator", "assignment")
        .filter(campaign=campaign, assignment__status=AssignmentStatus.SUBMITTED)
        .order_by("assignment__submitted_at", "id")
    )


# --- the local LLM's first start ----------------------------------------------------------

LLM_NOTE_CACHE_SECONDS = 5
LLM_HEALTH_TIMEOUT = 1.0
WAITING_FOR_LLM = (RecordingStatus.TRANSCRIBED, RecordingStatus.CLEANING)


def llm_start_note(*, recording: Recording) -> str | None:
    """What to tell the annotator while their caption waits for an LLM that is still
    starting (the local server's one-time GGUF conversion takes minutes); else None."""
    if recording.status not in WAITING_FOR_LLM or not caption_uses_llm():
        return None
    key = "captions:llm-start-note"
    cached = cache.get(key)
    if cached is None:
        cached = _llm_health_note(str(settings.OPENAI_BASE_URL))
        cache.set(key, cached, LLM_NOTE_CACHE_SECONDS)
    return cached or None


def _llm_health_note(base_url: str) -> str:
    """ "" when the endpoint is ready or says nothing; else the loading stage it reports."""
    health = base_url.rstrip("/").removesuffix("/v1") + "/health"
    if urlsplit(health).scheme not in {"http", "https"}:
        return ""
    try:
        with urllib.request.urlopen(health, timeout=LLM_HEALTH_TIMEOUT):  # noqa: S310 (configured URL)
            return ""
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            return ""
        if exc.code != 503 or body.get("status") != "loading":
            return ""
    except OSError:
        return "The language model is not reachable yet; the caption waits for it."
    stage, done, total = body.get("stage", "starting"), body.get("done", 0), body.get("total", 0)
    counted = f", {done}/{total} {body.get('unit') or 'tensors'}" if total else ""
    progress = f"{stage}{counted}, {float(body.get('elapsed_seconds', 0)):.0f} s so far"
    if not str(stage).startswith(("converting", "assembling")):
        return f"The language model is loading ({progress}). The caption follows when it is ready."
    return (
        f"The language model is starting for the first time ({progress}). This one-time "
        "conversion took 95 s to about 150 s in our trials on 2 CPU cores, and several "
        "minutes on a busy machine; later starts take seconds. The caption follows when "
        "it is ready."
    )
