"""Pages: the admin dashboard (progress, completions chart), an annotator's history, and
what the task and review pages of every kind share (admin previews, review verdicts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from annotator_app.accounts.models import User
from annotator_app.accounts.permissions import is_admin
from annotator_app.catalog.selectors import image_media_url
from annotator_app.work import selectors
from annotator_app.work.models import Campaign, CampaignKind
from annotator_app.work.selectors import assignment_get_reviewable
from annotator_app.work.services import (
    SKIP_REASON_MAX_CHARS,
    AssignmentStateError,
    assignment_verdict,
)

HISTORY_PAGE_SIZE = 25
CHART_DAYS = 30
CHART_WIDTH = 600
CHART_HEIGHT = 160


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    day: date
    count: int


def completions_chart(points: list[tuple[date, int]]) -> dict[str, object]:
    """Bar geometry for an SVG drawn by the template (no script, no inline style)."""
    top = max((n for _, n in points), default=0) or 1
    slot = CHART_WIDTH // max(len(points), 1)
    bars = []
    for i, (day, n) in enumerate(points):
        height = round(n / top * (CHART_HEIGHT - 20))
        bars.append(Bar(i * slot + 1, CHART_HEIGHT - height, max(slot - 2, 1), height, day, n))
    return {
        "bars": bars,
        "top": top,
        "total": sum(n for _, n in points),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "first": points[0][0] if points else None,
        "last": points[-1][0] if points else None,
    }


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """Admins: every campaign's progress, annotators' figures, completions per day."""
    if not is_admin(request.user):
        raise PermissionDenied("Only admins may see the dashboard.")
    campaign = None
    if request.GET.get("campaign", "").isdigit():
        campaign = selectors.campaign_get(campaign_id=int(request.GET["campaign"]))
    campaigns = list(Campaign.objects.order_by("-active", "-priority", "id"))
    figures = selectors.campaigns_progress(campaigns=campaigns)
    progress = [(c, figures[c.pk]) for c in campaigns]
    points = selectors.completions_by_day(campaign=campaign, days=CHART_DAYS)
    context = {
        "progress": progress,
        "annotators": selectors.annotator_progress(campaign=campaign),
        "chart": completions_chart(points),
        "selected": campaign,
        "campaigns": campaigns,
    }
    return render(request, "work/dashboard.html", context)


@login_required
@require_safe
def history(request: HttpRequest) -> HttpResponse:
    """The user's own assignments with their status and any reviewer's reason."""
    page = Paginator(selectors.assignment_history(user=request.user), HISTORY_PAGE_SIZE)
    return render(request, "work/history.html", {"page": page.get_page(request.GET.get("page"))})


def wants_preview(request: HttpRequest) -> bool:
    """Admins opening a task page see a preview and claim nothing, unless they ask to
    work on it themselves (`?annotate=1`)."""
    return is_admin(request.user) and request.GET.get("annotate") != "1"


def task_preview(request: HttpRequest, *, kind: str, context: dict[str, object]) -> HttpResponse:
    """The admin's read-only view of a task page: the next item, its campaign's settings.

    `context` adds what the kind's page shows (the guiding questions, label prompts).
    """
    campaign_id = request.GET.get("campaign", "")
    item = selectors.item_preview(
        kind=kind, campaign_id=int(campaign_id) if campaign_id.isdigit() else None
    )
    campaigns = Campaign.objects.filter(kind=kind).order_by("-active", "-priority", "id")
    page = {
        **context,
        "kind": CampaignKind(kind),
        "item": item,
        "campaign": item.campaign if item else None,
        "image_url": image_media_url(image=item.image) if item else "",
        "campaigns": campaigns,
    }
    return render(request, "work/preview.html", page)


def review_verdict_form(
    request: HttpRequest, *, assignment_id: int, kind: str, back_to: str
) -> HttpResponse:
    """A review page's Accept/Reject form post for one assignment of a `kind` campaign.

    404 when the reviewer may not review it; 400 naming the problem for a decision other
    than accept/reject or an over-long reason; else the verdict, or why it was refused,
    as a message on the review queue `back_to` (a URL name taking `campaign_id`)."""
    reviewer = cast(User, request.user)
    assignment = assignment_get_reviewable(user=reviewer, assignment_id=assignment_id)
    if assignment is None or assignment.item.campaign.kind != kind:
        raise Http404("no such assignment")
    decision = request.POST.get("decision")
    if decision not in ("accept", "reject"):
        return HttpResponse("decision must be accept or reject", status=400)
    reason = request.POST.get("reason", "")
    if len(reason) > SKIP_REASON_MAX_CHARS:
        return HttpResponse(f"reason: at most {SKIP_REASON_MAX_CHARS} characters", status=400)
    try:
        assignment_verdict(
            assignment=assignment, reviewer=reviewer, accept=decision == "accept", reason=reason
        )
    except AssignmentStateError as exc:
        messages.error(request, f"Assignment {assignment_id}: {exc}")
    else:
        verb = "accepted" if decision == "accept" else "rejected"
        messages.success(request, f"Assignment {assignment_id} {verb}.")
    return redirect(back_to, campaign_id=assignment.item.campaign_id)
