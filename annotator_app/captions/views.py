"""Pages: the capture page (record a spoken description), one's history, and review."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from annotator_app.accounts.models import User
from annotator_app.accounts.permissions import is_reviewer
from annotator_app.captions.guidance import GUIDING_QUESTIONS
from annotator_app.captions.models import Recording
from annotator_app.captions.progress import capture_progress
from annotator_app.captions.selectors import (
    RecordingTexts,
    cap_campaigns_to_review,
    recording_audio_url,
    recording_list_own,
    recording_texts,
    recordings_awaiting_review,
)
from annotator_app.catalog.selectors import image_media_url
from annotator_app.work.models import Assignment, Campaign, CampaignKind
from annotator_app.work.selectors import (
    campaign_get,
    can_review_campaign,
)
from annotator_app.work.services import (
    assignment_next,
    assignments_accept_bulk,
)
from annotator_app.work.views import review_verdict_form, task_preview, wants_preview
from pipelines.coverage import QUESTIONS

HISTORY_PAGE_SIZE = 20
REVIEW_PAGE_SIZE = 10
BULK_ACCEPT_MAX = 100


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


@login_required
@require_safe
def capture(request: HttpRequest) -> HttpResponse:
    """The user's leased cap item (claimed now if they hold none), or "nothing to do".

    Admins get a preview that claims nothing (work/views.py `task_preview`)."""
    if wants_preview(request):
        return task_preview(
            request, kind=CampaignKind.CAP, context={"questions": GUIDING_QUESTIONS}
        )
    user = cast(User, request.user)  # login_required: never anonymous here
    assignment = assignment_next(user=user, kind=CampaignKind.CAP)
    if assignment is None:
        return render(request, "captions/nothing.html")
    campaign = assignment.item.campaign
    context = {
        "assignment": assignment,
        "campaign": campaign,
        "image_url": image_media_url(image=assignment.item.image),
        "questions": GUIDING_QUESTIONS,
        "min_clock": _clock(campaign.min_seconds),
        "max_clock": _clock(campaign.max_seconds),
        "upload_url": reverse("captions-api:recordings"),
        "heartbeat_url": reverse("work-api:heartbeat", kwargs={"assignment_id": assignment.pk}),
        "skip_url": reverse("work-api:skip", kwargs={"assignment_id": assignment.pk}),
        "progress": capture_progress(user=user, campaign=campaign),
    }
    if campaign.live_guidance:  # P12: the live module's container (frontend/src/live.ts)
        context["live_url"] = reverse("captions-api:live", kwargs={"assignment_id": assignment.pk})
        context["live_questions"] = json.dumps([[q.key, q.text] for q in QUESTIONS])
    return render(request, "captions/capture.html", context)


def _rows(recordings: Iterable[Recording]) -> list[tuple[Recording, RecordingTexts, str]]:
    """What a recording list shows per row: the row, its texts, its audio URL."""
    return [(r, recording_texts(recording=r), recording_audio_url(recording=r)) for r in recordings]


@login_required
@require_safe
def history(request: HttpRequest) -> HttpResponse:
    """The user's past descriptions with their processing status and texts."""
    page = Paginator(recording_list_own(user=request.user), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "captions/history.html", {"page": page, "rows": _rows(page)})


@login_required
@require_safe
def review_index(request: HttpRequest) -> HttpResponse:
    """The cap campaigns this reviewer reviews, with how much waits in each."""
    if not is_reviewer(request.user):
        raise Http404("reviewing is for reviewers and admins")
    campaigns = cap_campaigns_to_review(user=request.user)
    return render(request, "captions/review_index.html", {"campaigns": campaigns})


def _reviewable_cap_campaign(request: HttpRequest, campaign_id: int) -> Campaign:
    campaign = campaign_get(campaign_id=campaign_id)
    if (
        campaign is None
        or campaign.kind != CampaignKind.CAP
        or not can_review_campaign(request.user, campaign)
    ):
        raise Http404("no such campaign")
    return campaign


@login_required
@require_safe
def review_queue(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The oldest recordings of a cap campaign waiting for a verdict: listen, read, decide."""
    campaign = _reviewable_cap_campaign(request, campaign_id)
    queue = recordings_awaiting_review(campaign=campaign)
    rows = _rows(queue[:REVIEW_PAGE_SIZE])
    context = {"campaign": campaign, "rows": rows, "waiting": queue.count()}
    return render(request, "captions/review_queue.html", context)


@login_required
@require_POST
def review_verdict(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Accept or reject one recording's assignment (a form post, CSRF-checked)."""
    return review_verdict_form(
        request, assignment_id=assignment_id, kind=CampaignKind.CAP, back_to="captions:review-queue"
    )


@login_required
@require_POST
def review_accept_shown(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Accept every description the reviewer was shown (the ids the page posts back)."""
    reviewer = cast(User, request.user)
    campaign = _reviewable_cap_campaign(request, campaign_id)
    raw = request.POST.getlist("assignment")
    if not raw or len(raw) > BULK_ACCEPT_MAX or not all(v.isdigit() for v in raw):
        return HttpResponse(
            f"assignment: send 1 to {BULK_ACCEPT_MAX} assignment ids (whole numbers)", status=400
        )
    ids = sorted({int(v) for v in raw})
    inside = set(
        Assignment.objects.filter(pk__in=ids, item__campaign=campaign).values_list("pk", flat=True)
    )
    outside = [i for i in ids if i not in inside]
    if outside:
        shown = ", ".join(map(str, outside[:20]))
        return HttpResponse(f"assignment: not in this campaign: {shown}", status=400)
    accepted = assignments_accept_bulk(assignment_ids=ids, reviewer=reviewer)
    messages.success(request, f"Accepted {accepted} description{'s' if accepted != 1 else ''}.")
    if accepted < len(ids):
        messages.warning(
            request,
            f"{len(ids) - accepted} not accepted: already reviewed meanwhile, or your own work.",
        )
    return redirect("captions:review-queue", campaign_id=campaign.pk)
