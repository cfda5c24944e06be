"""Captions reads: a recording with its texts, an annotator's history, audio access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse

from annotator_app.accounts.permissions import owns
from annotator_app.captions.models import Recording
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
    return _recordings().filter(annotator_id=user.pk).order_by("-created_at", "-id")


@dataclass(frozen=True)
class RecordingTexts:
    transcript: str | None  # None until the ASR stage has written one
    caption: str | None  # None until the cleaning stage has written one


def recording_texts(*, recording: Recording) -> RecordingTexts:
    """The transcript and cleaned caption texts, where those stages have run."""
    transcript = getattr(recording, "transcript", None)
    if transcript is None:
        return RecordingTexts(None, None)
    cleaned = getattr(transcript, "cleaned", None)
    return RecordingTexts(transcript.text, cleaned.text if cleaned is not None else None)


def recording_audio_url(*, recording: Recording, request: HttpRequest | None = None) -> str:
    """The permission-checked URL that plays this recording."""
    path = reverse("media", kwargs={"key": recording.storage_key})
    return request.build_absolute_uri(path) if request is not None else path


def recording_media_grant(user: Any, key: str) -> MediaGrant | None:
    """Media checker for "audio/": whoever may see the recording (see recording_visible_to)."""
    if not getattr(user, "is_authenticated", False):
        return None
    recording = Recording.objects.select_related("campaign").filter(storage_key=key).first()
    if recording is None or not recording_visible_to(user, recording):
        return None
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
