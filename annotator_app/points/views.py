"""Pages: the points page (point at every instance of each label) and the review pages."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from annotator_app.accounts.models import User
from annotator_app.accounts.permissions import is_reviewer
from annotator_app.catalog.selectors import image_media_url
from annotator_app.points import selectors
from annotator_app.points.review import (
    REASON_MAX_CHARS,
    ReviewError,
    review_accept_all,
    review_pick,
    review_reject,
)
from annotator_app.work.models import CampaignKind, CollectionMethod
from annotator_app.work.selectors import (
    campaign_get,
    can_review_campaign,
)
from annotator_app.work.services import assignment_next
from annotator_app.work.views import review_verdict_form, task_preview, wants_preview

REVIEW_PAGE_SIZE = 10


@login_required
@require_safe
def annotate(request: HttpRequest) -> HttpResponse:
    """The user's leased points item (claimed now if they hold none), or "nothing to do".

    Admins get a preview that claims nothing (work/views.py `task_preview`)."""
    if wants_preview(request):
        return task_preview(request, kind=CampaignKind.POINTS, context={})
    user = cast(User, request.user)
    assignment = assignment_next(user=user, kind=CampaignKind.POINTS)
    if assignment is None:
        return render(request, "points/nothing.html")
    campaign = assignment.item.campaign
    image = assignment.item.image
    context = {
        "assignment": assignment,
        "campaign": campaign,
        "image": image,
        "image_url": image_media_url(image=image),
        "counting": campaign.collection_method == CollectionMethod.COUNTING,
        "prompts": [" ".join(p.split()) for p in campaign.label_prompts],
        "max_points": settings.POINTS_MAX_PER_LABEL,
        "max_labels": settings.POINTS_MAX_LABELS,
        "submit_url": reverse("points-api:annotations"),
        "heartbeat_url": reverse("work-api:heartbeat", kwargs={"assignment_id": assignment.pk}),
        "skip_url": reverse("work-api:skip", kwargs={"assignment_id": assignment.pk}),
    }
    return render(request, "points/annotate.html", context)


@login_required
@require_safe
def review_index(request: HttpRequest) -> HttpResponse:
    """The points campaigns this reviewer reviews, with how much waits in each."""
    if not is_reviewer(request.user):
        raise Http404("reviewing is for reviewers and admins")
    campaigns = selectors.points_campaigns_to_review(user=request.user)
    return render(request, "points/review_index.html", {"campaigns": campaigns})


@login_required
@require_safe
def review_queue(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Overlap 1: the oldest submissions. Overlap > 1: the oldest items in disagreement."""
    campaign = campaign_get(campaign_id=campaign_id)
    if (
        campaign is None
        or campaign.kind != CampaignKind.POINTS
        or not can_review_campaign(request.user, campaign)
    ):
        raise Http404("no such campaign")
    entries: list[tuple[Any, selectors.ReviewEntry]]
    if campaign.overlap > 1:
        groups = selectors.review_groups(campaign=campaign)
        entries = [
            (g, selectors.review_entry(annotations=list(g.compared.all()), agreement=g))
            for g in groups[:REVIEW_PAGE_SIZE]
        ]
        waiting = groups.count()
    else:
        singles = selectors.review_singles(campaign=campaign)
        entries = [(a, selectors.review_entry(annotations=[a])) for a in singles[:REVIEW_PAGE_SIZE]]
        waiting = singles.count()
    context = {"campaign": campaign, "entries": entries, "waiting": waiting}
    return render(request, "points/review_queue.html", context)


def _reason(request: HttpRequest) -> str:
    reason = request.POST.get("reason", "")
    if len(reason) > REASON_MAX_CHARS:
        raise ReviewError(f"reason: at most {REASON_MAX_CHARS} characters")
    return reason


@login_required
@require_POST
def review_verdict(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """Overlap 1: accept or reject one submission (a form post, CSRF-checked)."""
    return review_verdict_form(
        request,
        assignment_id=assignment_id,
        kind=CampaignKind.POINTS,
        back_to="points:review-queue",
    )


@login_required
@require_POST
def review_decide(request: HttpRequest, agreement_id: int) -> HttpResponse:
    """Overlap > 1: accept all, pick one or reject one annotation of an image."""
    reviewer = cast(User, request.user)
    agreement = selectors.agreement_get_reviewable(user=reviewer, agreement_id=agreement_id)
    if agreement is None:
        raise Http404("no such item to review")
    action, _, target = request.POST.get("decision", "").partition(":")
    try:
        if action == "accept_all":
            review_accept_all(agreement=agreement, reviewer=reviewer)
            done = "all annotations accepted"
        elif action in ("pick", "reject") and target.isdigit():
            if action == "pick":
                review_pick(agreement=agreement, reviewer=reviewer, annotation_id=int(target))
                done = f"annotation {target} chosen"
            else:
                reason = _reason(request)
                review_reject(
                    agreement=agreement, reviewer=reviewer, annotation_id=int(target), reason=reason
                )
                done = f"annotation {target} rejected"
        else:
            return HttpResponse("decision must be accept_all, pick:ID or reject:ID", status=400)
    except ReviewError as exc:
        messages.error(request, f"Image {agreement.item_id}: {exc}")
    else:
        messages.success(request, f"Image {agreement.item_id}: {done}.")
    return redirect("points:review-queue", campaign_id=agreement.campaign_id)
