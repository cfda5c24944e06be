"""Work reads: who may see what, review queues, history and progress figures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from annotator_app.accounts.permissions import is_admin, is_reviewer
from annotator_app.work.counters import CAMPAIGN_FIELDS
from annotator_app.work.models import (
    AnnotatorCounter,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignCounter,
    CampaignDayCounter,
    WorkItem,
)

# --- permissions ---------------------------------------------------------------------------


def can_review_campaign(user: Any, campaign: Campaign) -> bool:
    """Admins review everything; a reviewer reviews the campaigns that list them, and
    every campaign whose reviewer list is empty."""
    if is_admin(user):
        return True
    if not is_reviewer(user):
        return False
    listed = campaign.reviewers.values_list("pk", flat=True)
    return not listed.exists() or listed.filter(pk=user.pk).exists()


def campaigns_reviewable_by(user: Any) -> QuerySet[Campaign]:
    if is_admin(user):
        return Campaign.objects.all()
    if not is_reviewer(user):
        return Campaign.objects.none()
    listed = Campaign.reviewers.through.objects.filter(campaign_id=OuterRef("pk"))
    return Campaign.objects.filter(Q(reviewers=user) | ~Exists(listed)).distinct()


def campaign_get(*, campaign_id: int) -> Campaign | None:
    return Campaign.objects.filter(pk=campaign_id).first()


def campaigns_for_annotator() -> QuerySet[Campaign]:
    """Active campaigns, highest priority first (every logged-in user may annotate)."""
    return Campaign.objects.filter(active=True).order_by("-priority", "id")


def item_preview(*, kind: str, campaign_id: int | None = None) -> WorkItem | None:
    """The item an annotator would be served next, for an admin to look at: read only.

    Campaigns in the order claiming visits them (active, by priority); inside one, the
    first open item (breadth-first campaigns: the most done first). Nothing is leased,
    so it is the item a new annotator would most likely get, not a reservation. With `campaign_id`, that
    campaign's next item, active or not (or any of its items when none is open).
    """
    items = WorkItem.objects.select_related("campaign", "image").filter(campaign__kind=kind)
    if campaign_id is not None:
        mine = items.filter(campaign_id=campaign_id)
        open_first = mine.order_by("-open_slots", "id")
        return open_first.first()
    for campaign in campaigns_for_annotator().filter(kind=kind):
        open_items = items.filter(campaign=campaign, open_slots__gt=0)
        order = ("-done_count", "id") if campaign.breadth_first else ("id",)
        item = open_items.order_by(*order).first()
        if item is not None:
            return item
    return None


def _assignments() -> QuerySet[Assignment]:
    return Assignment.objects.select_related("item__campaign", "item__image")


def assignment_get_own(*, user: Any, assignment_id: int) -> Assignment | None:
    """The user's own assignment; None for anyone else's (the API answers 404)."""
    return _assignments().filter(pk=assignment_id, annotator_id=user.pk).first()


def assignment_get_reviewable(*, user: Any, assignment_id: int) -> Assignment | None:
    """An assignment of a campaign this user reviews; None otherwise."""
    found = _assignments().filter(pk=assignment_id).first()
    if found is None or not can_review_campaign(user, found.item.campaign):
        return None
    return found


def assignment_history(*, user: Any) -> QuerySet[Assignment]:
    """The user's assignments, newest first, with verdicts and reasons."""
    return _assignments().filter(annotator_id=user.pk).order_by("-started_at", "-id")


def review_queue(*, campaign: Campaign) -> QuerySet[Assignment]:
    """Submitted work of a campaign awaiting a verdict, oldest submission first."""
    return (
        _assignments()
        .select_related("annotator")
        .filter(item__campaign=campaign, status=AssignmentStatus.SUBMITTED)
        .order_by("submitted_at", "id")
    )


# --- progress ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignProgress:
    campaign_id: int
    items: int
    items_complete: int  # items with `overlap` submissions that were not rejected
    slots_total: int
    remaining: int  # open slots: annotations still to be claimed
    in_progress: int  # live leases
    awaiting_review: int
    accepted: int
    rejected: int
    skipped: int
    expired: int


def campaigns_progress(*, campaigns: Iterable[Campaign]) -> dict[int, CampaignProgress]:
    """Totals of many campaigns from their counter rows (16 per campaign, whatever the
    campaign's size): one grouped statement."""
    by_id = {c.pk: c for c in campaigns}
    sums: dict[int, dict[str, Any]] = {
        row["campaign_id"]: dict(row)
        for row in CampaignCounter.objects.filter(campaign_id__in=list(by_id))
        .values("campaign_id")
        .annotate(**{f: Sum(f) for f in CAMPAIGN_FIELDS})
        .order_by()
    }
    result = {}
    for campaign_id, campaign in by_id.items():
        row = sums.get(campaign_id, {})
        n = {f: int(row.get(f) or 0) for f in CAMPAIGN_FIELDS}
        result[campaign_id] = CampaignProgress(
            campaign_id=campaign_id,
            items=n["items"],
            items_complete=n["items_complete"],
            slots_total=n["items"] * campaign.overlap,
            remaining=n["open_slots"],
            in_progress=n["leased"],
            awaiting_review=n["submitted"],
            accepted=n["accepted"],
            rejected=n["rejected"],
            skipped=n["skipped"],
            expired=n["expired"],
        )
    return result


def campaign_progress(*, campaign: Campaign) -> CampaignProgress:
    """One campaign's totals, read from its counters (see counters.py)."""
    return campaigns_progress(campaigns=[campaign])[campaign.pk]


@dataclass(frozen=True)
class AnnotatorProgress:
    annotator_id: int
    username: str
    items: int  # submissions, whatever their verdict
    accepted: int
    rejected: int
    active_seconds: int
    items_per_hour: float | None  # None until some active time is recorded


def annotator_progress(
    *, campaign: Campaign | None = None, annotator: Any = None
) -> list[AnnotatorProgress]:
    """Per-annotator figures over submitted work (of one campaign, or all campaigns),
    read from the per-annotator counters: one row per annotator and campaign."""
    rows = AnnotatorCounter.objects.filter(items__gt=0)
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    if annotator is not None:
        rows = rows.filter(annotator=annotator)
    grouped = (
        rows.values("annotator_id", "annotator__username")
        .annotate(
            n=Sum("items"),
            ok=Sum("accepted"),
            bad=Sum("rejected"),
            seconds=Sum("active_seconds"),
        )
        .order_by("annotator__username")
    )
    result = []
    for row in grouped:
        seconds = int(row["seconds"] or 0)
        rate = round(row["n"] * 3600 / seconds, 2) if seconds else None
        result.append(
            AnnotatorProgress(
                annotator_id=row["annotator_id"],
                username=row["annotator__username"],
                items=int(row["n"]),
                accepted=int(row["ok"]),
                rejected=int(row["bad"]),
                active_seconds=seconds,
                items_per_hour=rate,
            )
        )
    return result


def completions_by_day(
    *, campaign: Campaign | None = None, days: int = 30, now: datetime | None = None
) -> list[tuple[date, int]]:
    """Submissions per day (TIME_ZONE) over the last `days` days, zero-filled, oldest
    first, read from the day counters."""
    today = timezone.localdate(now) if now else timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = CampaignDayCounter.objects.filter(day__gte=first, day__lte=today)
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    counts = dict(
        rows.values_list("day").annotate(n=Sum("submissions")).values_list("day", "n").order_by()
    )
    return [
        (first + timedelta(days=i), int(counts.get(first + timedelta(days=i), 0)))
        for i in range(days)
    ]
