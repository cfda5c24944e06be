"""Pages: the AMA page (ask, judge, revise) and the review pages of AMA sessions."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from annotator_app.accounts.models import User
from annotator_app.accounts.permissions import is_reviewer
from annotator_app.ama import selectors
from annotator_app.ama.models import FEEDBACK_MAX_CHARS, QUESTION_MAX_CHARS
from annotator_app.ama.services import session_for_assignment
from annotator_app.catalog.selectors import image_media_url
from annotator_app.work.models import CampaignKind
from annotator_app.work.selectors import (
    campaign_get,
    can_review_campaign,
)
from annotator_app.work.services import (
    SKIP_REASON_MAX_CHARS,
    assignment_next,
)
from annotator_app.work.views import review_verdict_form, task_preview, wants_preview
from pipelines.ama import SOURCE_LABELS

REVIEW_PAGE_SIZE = 20


@login_required
@require_safe
def annotate(request: HttpRequest) -> HttpResponse:
    """The user's leased AMA image (claimed now if they hold none), or "nothing to do".

    Admins get a preview that claims nothing (work/views.py `task_preview`)."""
    if wants_preview(request):
        return task_preview(request, kind=CampaignKind.AMA, context={})
    user = cast(User, request.user)
    assignment = assignment_next(user=user, kind=CampaignKind.AMA)
    if assignment is None:
        return render(request, "ama/nothing.html")
    session = session_for_assignment(assignment=assignment)
    rounds_base = reverse("ama-api:retry", kwargs={"round_id": 0}).removesuffix("0/retry/")
    context = {
        "assignment": assignment,
        "session": session,
        "campaign": assignment.item.campaign,
        "image": assignment.item.image,
        "image_url": image_media_url(image=assignment.item.image),
        "question_max": QUESTION_MAX_CHARS,
        "feedback_max": FEEDBACK_MAX_CHARS,
        "reason_max": SKIP_REASON_MAX_CHARS,
        "session_url": reverse("ama-api:session", kwargs={"session_id": session.pk}),
        "ask_url": reverse("ama-api:ask", kwargs={"session_id": session.pk}),
        "skip_url": reverse("ama-api:skip", kwargs={"session_id": session.pk}),
        "rounds_url": rounds_base,
        "heartbeat_url": reverse("work-api:heartbeat", kwargs={"assignment_id": assignment.pk}),
    }
    return render(request, "ama/annotate.html", context)


@login_required
@require_safe
def review_index(request: HttpRequest) -> HttpResponse:
    if not is_reviewer(request.user):
        raise Http404("reviewing is for reviewers and admins")
    campaigns = [
        (c, selectors.sessions_awaiting_verdict(campaign=c).count())
        for c in selectors.ama_campaigns_to_review(user=request.user)
    ]
    return render(request, "ama/review_index.html", {"campaigns": campaigns})


@login_required
@require_safe
def review_queue(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign's finished sessions with all their rounds; verdicts on accepted ones."""
    campaign = campaign_get(campaign_id=campaign_id)
    if (
        campaign is None
        or campaign.kind != CampaignKind.AMA
        or not can_review_campaign(request.user, campaign)
    ):
        raise Http404("no such campaign")
    waiting = selectors.sessions_awaiting_verdict(campaign=campaign)
    show = request.GET.get("show", "waiting")
    rows = waiting if show == "waiting" else selectors.sessions_for_review(campaign=campaign)
    context = {
        "campaign": campaign,
        "sessions": rows[:REVIEW_PAGE_SIZE],
        "waiting": waiting.count(),
        "show": show,
        "source_labels": SOURCE_LABELS,
    }
    return render(request, "ama/review_queue.html", context)


@login_required
@require_POST
def review_verdict(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Accept or reject one annotator's accepted QA pair (a form post, CSRF-checked)."""
    return review_verdict_form(
        request, assignment_id=assignment_id, kind=CampaignKind.AMA, back_to="ama:review-queue"
    )
