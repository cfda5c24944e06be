"""AMA and CapQA reads: who may see a session, the evidence sources, review lists, and the
plain rows the exports read (`ama_pairs_for_export`, `preference_pairs_for_export`,
`capqa_for_export`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from annotator_app.ama.models import (
    AmaRound,
    AmaSession,
    CapQAPair,
    SessionStatus,
    Verdict,
)
from annotator_app.captions.models import CleanedCaption, ImageSummary, SummaryStatus
from annotator_app.catalog.models import Image
from annotator_app.work.models import AssignmentStatus, Campaign, CampaignKind
from annotator_app.work.selectors import campaigns_reviewable_by, can_review_campaign

# --- sessions and permissions --------------------------------------------------------------


def _sessions() -> QuerySet[AmaSession]:
    return AmaSession.objects.select_related("campaign", "image", "assignment", "annotator")


def session_get_own(*, user: Any, session_id: int) -> AmaSession | None:
    """The annotator's own session (acting on it); None for anyone else's (404)."""
    return _sessions().filter(pk=session_id, annotator_id=user.pk).first()


def session_get_visible(*, user: Any, session_id: int) -> AmaSession | None:
    """Readable by its annotator, the reviewers of its campaign and admins; else None."""
    found = _sessions().filter(pk=session_id).first()
    if found is None:
        return None
    if found.annotator_id == user.pk or can_review_campaign(user, found.campaign):
        return found
    return None


def round_session_id_own(*, user: Any, round_id: int) -> int | None:
    """The session id of one of the user's own rounds; None for anyone else's."""
    return (
        AmaRound.objects.filter(pk=round_id, session__annotator_id=user.pk)
        .values_list("session_id", flat=True)
        .first()
    )


def session_rounds(*, session: AmaSession) -> list[AmaRound]:
    return list(session.rounds.order_by("index"))


# --- evidence ------------------------------------------------------------------------------


def accepted_captions_of(*, image: Image) -> tuple[str, list[str]]:
    """(summary text, accepted cleaned captions) of PixMo-Cap work on this image.

    The summary counts when it is done; a caption when its recording is done and a
    reviewer accepted its assignment.
    """
    summary = (
        ImageSummary.objects.filter(image=image, status=SummaryStatus.DONE)
        .exclude(text="")
        .order_by("-updated_at")
        .values_list("text", flat=True)
        .first()
    )
    captions = list(
        CleanedCaption.objects.filter(
            transcript__recording__image=image,
            transcript__recording__assignment__status=AssignmentStatus.ACCEPTED,
        )
        .order_by("id")
        .values_list("text", flat=True)
    )
    return summary or "", captions


def accepted_captions_for_capqa(*, campaign: Campaign) -> QuerySet[CleanedCaption]:
    """The campaign's cleaned captions whose assignment a reviewer accepted."""
    return (
        CleanedCaption.objects.filter(
            transcript__recording__campaign=campaign,
            transcript__recording__assignment__status=AssignmentStatus.ACCEPTED,
        )
        .exclude(text="")
        .select_related("transcript__recording")
        .order_by("id")
    )


# --- review --------------------------------------------------------------------------------


def ama_campaigns_to_review(*, user: Any) -> QuerySet[Campaign]:
    return campaigns_reviewable_by(user).filter(kind=CampaignKind.AMA).order_by("-priority", "id")


def sessions_for_review(*, campaign: Campaign) -> QuerySet[AmaSession]:
    """Finished sessions (accepted or skipped), newest first, with every round."""
    return (
        _sessions()
        .filter(campaign=campaign)
        .exclude(status=SessionStatus.OPEN)
        .prefetch_related(Prefetch("rounds", queryset=AmaRound.objects.order_by("index")))
        .order_by("-updated_at", "-id")
    )


def sessions_awaiting_verdict(*, campaign: Campaign) -> QuerySet[AmaSession]:
    return sessions_for_review(campaign=campaign).filter(
        status=SessionStatus.ACCEPTED, assignment__status=AssignmentStatus.SUBMITTED
    )


# --- export rows ---------------------------------------------------------------------------

# A QA pair is exportable once its annotator accepted it and no reviewer rejected it.
_EXPORTABLE = Q(status=SessionStatus.ACCEPTED) & Q(
    assignment__status__in=(AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)
)


def _accepted_sessions(campaign: Campaign | None, since: datetime | None) -> QuerySet[AmaSession]:
    rows = _sessions().filter(_EXPORTABLE)
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    if since is not None:
        rows = rows.filter(accepted_at__gte=since)
    return rows.order_by("id")


def _image_columns(image: Image) -> dict[str, Any]:
    return {
        "image_url": image.source_url,
        "image_sha256": image.sha256,
        "image_id": image.pk,
        "image_storage_key": image.storage_key,
    }


def ama_pairs_for_export(
    *, campaign: Campaign | None = None, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """One row per accepted AMA answer: the published columns (image_url, image_sha256,
    question, answer) first, then our own (campaign, session, rounds, evidence, model).

    `since` filters on the time the annotator accepted the answer.
    """
    accepted = AmaRound.objects.filter(verdict=Verdict.ACCEPTED)
    sessions = _accepted_sessions(campaign, since).prefetch_related(
        Prefetch("rounds", queryset=accepted, to_attr="accepted_rounds")
    )
    for session in sessions.iterator(chunk_size=500):
        if not session.accepted_rounds:
            continue
        chosen: AmaRound = session.accepted_rounds[0]
        yield {
            **_image_columns(session.image),
            "question": chosen.question,
            "answer": chosen.answer,
            "campaign": session.campaign.name,
            "session_id": session.pk,
            "annotator_id": session.annotator_id,
            "rounds": chosen.index,
            "caption_source": chosen.caption_source,
            "caption": chosen.caption,
            "ocr_text": chosen.ocr_text,
            "prompt_version": chosen.prompt_version,
            "model_name": chosen.model_name,
            "accepted_at": session.accepted_at,
        }


def preference_pairs_for_export(
    *, campaign: Campaign | None = None, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """One row per rejected answer of an accepted session: chosen (the accepted answer)
    vs rejected (that round's answer), with the feedback that rejected it."""
    ordered = AmaRound.objects.filter(verdict__in=(Verdict.ACCEPTED, Verdict.REJECTED)).order_by(
        "index"
    )
    sessions = _accepted_sessions(campaign, since).prefetch_related(
        Prefetch("rounds", queryset=ordered, to_attr="judged_rounds")
    )
    for session in sessions.iterator(chunk_size=500):
        judged: list[AmaRound] = session.judged_rounds
        chosen = next((r for r in judged if r.verdict == Verdict.ACCEPTED), None)
        if chosen is None:
            continue
        for rejected in (r for r in judged if r.verdict == Verdict.REJECTED):
            yield {
                **_image_columns(session.image),
                "question": rejected.question,
                "chosen": chosen.answer,
                "rejected": rejected.answer,
                "feedback": rejected.feedback,
                "chosen_round": chosen.index,
                "rejected_round": rejected.index,
                "campaign": session.campaign.name,
                "session_id": session.pk,
                "annotator_id": session.annotator_id,
                "caption_source": rejected.caption_source,
                "model_name": rejected.model_name,
                "prompt_version": rejected.prompt_version,
            }


def capqa_for_export(
    *, campaign: Campaign | None = None, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """One row per CapQA pair: image_url, question, answer (published), then ours.

    `campaign` is the cap campaign whose captions the pairs came from.
    """
    rows = CapQAPair.objects.select_related("image", "campaign").order_by("id")
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    for pair in rows.iterator(chunk_size=1000):
        yield {
            **_image_columns(pair.image),
            "question": pair.question,
            "answer": pair.answer,
            "campaign": pair.campaign.name,
            "multi_turn": pair.multi_turn,
            "topic": pair.topic,
            "style": pair.style,
            "source_kind": pair.source_kind,
            "source_caption_id": pair.source_caption_id,
            "prompt_version": pair.prompt_version,
            "model_name": pair.model_name,
            "created_at": pair.created_at,
        }
