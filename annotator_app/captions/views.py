"""Pages: the capture page (record a spoken description) and one's history."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from annotator_app.accounts.models import User
from annotator_app.captions.guidance import GUIDING_QUESTIONS
from annotator_app.captions.selectors import (
    recording_audio_url,
    recording_list_own,
    recording_texts,
)
from annotator_app.catalog.selectors import image_media_url
from annotator_app.work.models import CampaignKind
from annotator_app.work.services import assignment_next

HISTORY_PAGE_SIZE = 20


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


@login_required
@require_safe
def capture(request: HttpRequest) -> HttpResponse:
    """The user's leased cap item (claimed now if they hold none), or "nothing to do"."""
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
    }
    return render(request, "captions/capture.html", context)


@login_required
@require_safe
def history(request: HttpRequest) -> HttpResponse:
    """The user's past descriptions with their processing status and texts."""
    page = Paginator(recording_list_own(user=request.user), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [(r, recording_texts(recording=r), recording_audio_url(recording=r)) for r in page]
    return render(request, "captions/history.html", {"page": page, "rows": rows})
