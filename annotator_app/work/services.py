"""Work writes: campaigns, their items, and every move of an assignment.

Each function keeps `WorkItem.open_slots` and `WorkItem.done_count` in step with the
assignment it changes, in the same transaction (see ALGORITHM.md for the invariants).
Locking order, everywhere: assignment row first, then its item row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from annotator_app.accounts.models import User
from annotator_app.catalog.models import Image
from annotator_app.work.claiming import (
    RECLAIM_BATCH,
    _lease_end,
    assignment_next,
    assignments_reclaim_expired,
    items_reopened,
)
from annotator_app.work.counters import (
    count_annotator,
    count_annotators_accepted,
    count_day,
    count_item,
    count_items,
    counters_repair_campaign,
)
from annotator_app.work.models import (
    SLOT_HOLDING,
    Assignment,
    AssignmentStatus,
    Campaign,
    ClaimCursor,
    CollectionMethod,
)

# Re-exported: callers import the whole engine from here.
__all__ = ["RECLAIM_BATCH", "assignment_next", "assignments_reclaim_expired"]


class AssignmentStateError(ValueError):
    """The assignment is in a state that does not allow this move; the message says why."""


class CampaignError(ValueError):
    """A campaign's settings are invalid; the message names the field."""


# --- campaigns and items -------------------------------------------------------------------


# A label prompt is shown to annotators and stored with their points: the same limits.
LABEL_PROMPT_MAX_CHARS = 200
LABEL_PROMPTS_MAX = 100


def campaign_validate(*, kind: str, overlap: int, min_seconds: int, max_seconds: int,
                      label_prompts: Sequence[Any], lease_seconds: int,
                      collection_method: str = CollectionMethod.COUNTING) -> None:  # fmt: skip
    """Refuse settings the engine cannot serve; raises CampaignError naming the field."""
    if overlap < 1:
        raise CampaignError("overlap: must be at least 1")
    if lease_seconds < 30:
        raise CampaignError("lease_seconds: must be at least 30")
    if min_seconds > max_seconds:
        raise CampaignError("min_seconds: must not exceed max_seconds")
    if kind == "points":
        _check_label_prompts(label_prompts, collection_method)
    elif label_prompts:
        raise CampaignError("label_prompts: only points campaigns have label prompts")


def _check_label_prompts(label_prompts: Sequence[Any], collection_method: str) -> None:
    if collection_method not in CollectionMethod.values:
        raise CampaignError(
            f"collection_method: must be one of {', '.join(CollectionMethod.values)}"
        )
    if collection_method == CollectionMethod.COUNTING and not label_prompts:
        raise CampaignError("label_prompts: a counting campaign needs at least one label")
    if not all(isinstance(p, str) and p.strip() for p in label_prompts):
        raise CampaignError("label_prompts: every label must be a non-empty string")
    if len(label_prompts) > LABEL_PROMPTS_MAX:
        raise CampaignError(f"label_prompts: at most {LABEL_PROMPTS_MAX} labels")
    too_long = [p for p in label_prompts if len(p.strip()) > LABEL_PROMPT_MAX_CHARS]
    if too_long:
        raise CampaignError(f"label_prompts: at most {LABEL_PROMPT_MAX_CHARS} characters per label")
    seen: set[str] = set()
    for prompt in label_prompts:
        key = " ".join(prompt.split()).casefold()
        if key in seen:
            raise CampaignError(f"label_prompts: {prompt.strip()!r} is listed twice")
        seen.add(key)


def campaign_create(
    *,
    name: str,
    kind: str,
    topics: Iterable[Any] = (),
    images: Iterable[Image] = (),
    reviewers: Iterable[User] = (),
    **fields: Any,
) -> Campaign:
    """Create a campaign and its work items."""
    campaign = Campaign(name=name, kind=kind, **fields)
    _check(campaign)
    with transaction.atomic():
        campaign.save()
        campaign.topics.set(list(topics))
        campaign.images.set(list(images))
        campaign.reviewers.set(list(reviewers))
        campaign_sync_items(campaign=campaign)
    return campaign


def campaign_update(
    *,
    campaign: Campaign,
    topics: Iterable[Any] | None = None,
    images: Iterable[Image] | None = None,
    reviewers: Iterable[User] | None = None,
    **fields: Any,
) -> Campaign:
    """Change a campaign; items follow its images and open slots follow its overlap."""
    order_before = (campaign.breadth_first, campaign.overlap)
    for key, value in fields.items():
        setattr(campaign, key, value)
    _check(campaign)
    with transaction.atomic():
        campaign.save()
        if (campaign.breadth_first, campaign.overlap) != order_before:
            # Lanes are done_count levels in breadth-first order: start the scans over.
            ClaimCursor.objects.filter(campaign=campaign).delete()
        if topics is not None:
            campaign.topics.set(list(topics))
        if images is not None:
            campaign.images.set(list(images))
        if reviewers is not None:
            campaign.reviewers.set(list(reviewers))
        campaign_sync_items(campaign=campaign)
    return campaign


def _check(campaign: Campaign) -> None:
    campaign_validate(
        kind=campaign.kind,
        overlap=campaign.overlap,
        min_seconds=campaign.min_seconds,
        max_seconds=campaign.max_seconds,
        label_prompts=campaign.label_prompts,
        lease_seconds=campaign.lease_seconds,
        collection_method=campaign.collection_method,
    )


def campaign_sync_items(*, campaign: Campaign) -> dict[str, int]:
    """Make the campaign's items match its images (explicit ones and its topics').

    Idempotent and set-based: inserts missing items, deletes untouched items of images
    the campaign no longer covers (items anyone worked on stay), and recomputes every
    item's open slots from its overlap, then repairs the campaign's counters. Returns
    counts of created/removed items.
    """
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO work_workitem (campaign_id, image_id, open_slots, done_count, created_at)
            SELECT %(c)s, img.id, %(overlap)s, 0, now() FROM (
                SELECT image_id AS id FROM work_campaign_images WHERE campaign_id = %(c)s
                UNION
                SELECT it.image_id FROM catalog_image_topics it
                JOIN work_campaign_topics ct ON ct.topic_id = it.topic_id
                WHERE ct.campaign_id = %(c)s
            ) img
            ON CONFLICT (campaign_id, image_id) DO NOTHING
            """,
            {"c": campaign.pk, "overlap": campaign.overlap},
        )
        created = cur.rowcount
        cur.execute(
            """
            DELETE FROM work_workitem w
            WHERE w.campaign_id = %(c)s
              AND NOT EXISTS (SELECT 1 FROM work_assignment a WHERE a.item_id = w.id)
              AND NOT EXISTS (SELECT 1 FROM work_campaign_images ci
                              WHERE ci.campaign_id = %(c)s AND ci.image_id = w.image_id)
              AND NOT EXISTS (SELECT 1 FROM catalog_image_topics it
                              JOIN work_campaign_topics ct ON ct.topic_id = it.topic_id
                              WHERE ct.campaign_id = %(c)s AND it.image_id = w.image_id)
            """,
            {"c": campaign.pk},
        )
        removed = cur.rowcount
        if _recompute_open_slots(cur, campaign):
            # Items got slots back below the annotators' cursors: scan from the start.
            ClaimCursor.objects.filter(campaign=campaign).delete()
        counters_repair_campaign(campaign_id=campaign.pk)
    return {"created": created, "removed": removed}


def _recompute_open_slots(cur: Any, campaign: Campaign) -> int:
    # Lock the items first: a claim skips a locked item, and every other counter change
    # either committed before (so the count below sees it) or waits and applies its
    # delta after the recount.
    cur.execute(
        "SELECT id FROM work_workitem WHERE campaign_id = %s ORDER BY id FOR UPDATE",
        [campaign.pk],
    )
    cur.execute(
        """
        UPDATE work_workitem w SET open_slots = GREATEST(%(overlap)s - COALESCE(h.n, 0), 0)
        FROM work_workitem w2 LEFT JOIN (
            SELECT a.item_id, count(*) AS n FROM work_assignment a
            JOIN work_workitem wi ON wi.id = a.item_id
            WHERE wi.campaign_id = %(c)s AND a.status IN %(holding)s
            GROUP BY a.item_id
        ) h ON h.item_id = w2.id
        WHERE w.id = w2.id AND w2.campaign_id = %(c)s
          AND w.open_slots <> GREATEST(%(overlap)s - COALESCE(h.n, 0), 0)
        """,
        {"c": campaign.pk, "overlap": campaign.overlap, "holding": tuple(SLOT_HOLDING)},
    )
    return int(cur.rowcount)


def _writing() -> Any:
    """The caller's transaction when there is one (no savepoint), else a new one.

    Every move validates before it writes, so a refusal leaves the caller's
    transaction usable.
    """
    return nullcontext() if connection.in_atomic_block else transaction.atomic()


# --- the annotator's moves -----------------------------------------------------------------


def _locked(assignment: Assignment, *, campaign: bool = False) -> Assignment:
    rows = Assignment.objects.select_for_update(of=("self",))
    if campaign:
        rows = rows.select_related("item__campaign")
    return rows.get(pk=assignment.pk)


_ITEM_ADD_SQL = """
UPDATE work_workitem w SET open_slots = w.open_slots + %(slots)s,
                           done_count = w.done_count + %(done)s
FROM work_campaign c
WHERE w.id = %(item)s AND c.id = w.campaign_id AND (%(slots)s >= 0 OR w.open_slots > 0)
RETURNING w.campaign_id, w.done_count, c.overlap
"""


def _item_add(item_id: int, *, slots: int = 0, done: int = 0, submitted_on: date | None = None,
              **counts: int) -> int | None:  # fmt: skip
    """Move an item's open slots and done count and count the move in the campaign's
    counters (plus `counts`), in the caller's transaction, after the assignment's own
    write. Taking a slot (slots < 0) only happens while the item has one. Returns the
    item's campaign id, or None when no slot was left to take."""
    with connection.cursor() as cur:
        cur.execute(_ITEM_ADD_SQL, {"slots": slots, "done": done, "item": item_id})
        row = cur.fetchone()
    if row is None:
        return None
    campaign_id, done_now, overlap = row
    complete = int(done_now >= overlap) - int(done_now - done >= overlap)
    if slots > 0:
        items_reopened(item_ids=[item_id])
    count_item(
        campaign_id=campaign_id,
        item_id=item_id,
        submitted_on=submitted_on,
        open_slots=slots,
        items_complete=complete,
        **counts,
    )
    return int(campaign_id)


def _hold_slot(locked: Assignment, *, action: str) -> None:
    """Let the owner of a reclaimed lease go on when the item still has a free slot."""
    if locked.status == AssignmentStatus.LEASED:
        return
    if locked.status == AssignmentStatus.EXPIRED:
        if _item_add(locked.item_id, slots=-1, expired=-1, leased=1) is not None:
            locked.status = AssignmentStatus.LEASED
            return
        raise AssignmentStateError(
            f"cannot {action}: the lease expired and the item went to other annotators"
        )
    raise AssignmentStateError(f"cannot {action}: the assignment is {locked.status}, not leased")


def _apply_seconds(locked: Assignment, active_seconds: int | None) -> None:
    if active_seconds is None:
        return
    if active_seconds < 0:
        raise AssignmentStateError("active_seconds: must not be negative")
    # Clients report a running total; a late, smaller report never lowers it.
    locked.active_seconds = max(locked.active_seconds, active_seconds)


def assignment_heartbeat(
    *, assignment: Assignment, active_seconds: int | None = None
) -> Assignment:
    """Renew the lease (and record active seconds) while the annotator works."""
    with transaction.atomic():
        locked = _locked(assignment, campaign=True)
        _apply_seconds(locked, active_seconds)
        _hold_slot(locked, action="renew the lease")
        now = timezone.now()
        locked.heartbeat_at = now
        locked.leased_until = _lease_end(locked.item.campaign, now)
        locked.save(update_fields=["status", "heartbeat_at", "leased_until", "active_seconds"])
    return locked


def assignment_submit(*, assignment: Assignment, active_seconds: int | None = None) -> Assignment:
    """Mark the work submitted; call inside the caller's transaction with the saved work.

    Locks the assignment row (SELECT FOR UPDATE). Accepts a leased assignment, or the
    owner's expired one while the item still has a free slot. Raises
    AssignmentStateError otherwise.
    """
    with _writing():
        locked = _locked(assignment)
        _apply_seconds(locked, active_seconds)
        _hold_slot(locked, action="submit")
        locked.status = AssignmentStatus.SUBMITTED
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["status", "submitted_at", "active_seconds"])
        day = count_day(locked.submitted_at)
        campaign_id = _item_add(locked.item_id, done=1, submitted_on=day, leased=-1, submitted=1)
        assert campaign_id is not None  # the item row is there: the assignment points at it
        count_annotator(
            campaign_id=campaign_id,
            annotator_id=locked.annotator_id,
            items=1,
            active_seconds=locked.active_seconds,
        )
    return locked


SKIP_REASON_MAX_CHARS = 2000


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """The annotator will not do this item: free the slot, never offer it to them again.

    `reason` (optional here; task pages ask for one) is kept for admins and the history.
    """
    reason = reason.strip()
    if len(reason) > SKIP_REASON_MAX_CHARS:
        raise AssignmentStateError(f"reason: at most {SKIP_REASON_MAX_CHARS} characters")
    with transaction.atomic():
        locked = _locked(assignment)
        if locked.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
            raise AssignmentStateError(f"cannot skip: the assignment is {locked.status}")
        was = locked.status
        locked.status = AssignmentStatus.SKIPPED
        locked.skip_reason = reason
        locked.save(update_fields=["status", "skip_reason"])
        if was == AssignmentStatus.LEASED:
            _item_add(locked.item_id, slots=1, leased=-1, skipped=1)
        else:
            _item_add(locked.item_id, expired=-1, skipped=1)
    return locked


def assignment_release(*, assignment: Assignment) -> None:
    """Hand the item back untouched: the row goes, so it may be offered to them later."""
    with transaction.atomic():
        locked = _locked(assignment)
        if locked.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
            raise AssignmentStateError(f"cannot release: the assignment is {locked.status}")
        locked.delete()
        if locked.status == AssignmentStatus.LEASED:
            _item_add(locked.item_id, slots=1, leased=-1)
        else:
            _item_add(locked.item_id, expired=-1)


# --- review --------------------------------------------------------------------------------


def assignment_verdict(
    *, assignment: Assignment, reviewer: User, accept: bool, reason: str = ""
) -> Assignment:
    """Accept or reject a submission; a rejection frees the slot for another annotator.

    The caller checks that the reviewer may review this campaign
    (selectors.can_review_campaign); this refuses reviewing one's own work.
    """
    with transaction.atomic():
        locked = _locked(assignment)
        if locked.annotator_id == reviewer.pk:
            raise AssignmentStateError("you cannot review your own work")
        if locked.status != AssignmentStatus.SUBMITTED:
            raise AssignmentStateError(
                f"only submitted work can be reviewed; this assignment is {locked.status}"
            )
        reason = reason.strip()
        if not accept and not reason:
            raise AssignmentStateError("reason: say why the work is rejected")
        locked.status = AssignmentStatus.ACCEPTED if accept else AssignmentStatus.REJECTED
        locked.reviewed_by = reviewer
        locked.reviewed_at = timezone.now()
        locked.review_reason = reason
        locked.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_reason"])
        if accept:
            campaign_id = _item_add(locked.item_id, submitted=-1, accepted=1)
        else:
            campaign_id = _item_add(locked.item_id, slots=1, done=-1, submitted=-1, rejected=1)
        assert campaign_id is not None
        count_annotator(
            campaign_id=campaign_id,
            annotator_id=locked.annotator_id,
            accepted=int(accept),
            rejected=int(not accept),
        )
    return locked


_ACCEPT_SQL = """
UPDATE work_assignment SET status = 'accepted', reviewed_by_id = %(reviewer)s,
                           reviewed_at = %(now)s, review_reason = %(note)s
WHERE id = ANY(%(ids)s::bigint[]) AND status = 'submitted'
  AND (%(reviewer)s::bigint IS NULL OR annotator_id <> %(reviewer)s)
RETURNING id, item_id
"""


def _accept(assignment_ids: Sequence[int], reviewer: User | None, note: str) -> int:
    params = {
        "ids": list(assignment_ids),
        "reviewer": reviewer.pk if reviewer is not None else None,
        "now": timezone.now(),
        "note": note,
    }
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(_ACCEPT_SQL, params)
        rows = cur.fetchall()
        count_items(item_ids=[item_id for _, item_id in rows], submitted=-1, accepted=1)
        count_annotators_accepted(assignment_ids=[pk for pk, _ in rows])
    return len(rows)


def assignments_accept_bulk(*, assignment_ids: Sequence[int], reviewer: User) -> int:
    """Accept many submissions in one statement (the reviewer's "accept all shown").

    Skips ids that are not submitted or are the reviewer's own. The caller checks the
    reviewer's campaigns. Returns how many were accepted.
    """
    return _accept(assignment_ids, reviewer, "")


def assignments_accept_agreed(*, assignment_ids: Sequence[int], note: str = "") -> int:
    """Accept submissions that a quality check passed (annotators agreed), with no reviewer.

    Call inside the transaction that stored the check, holding the assignments' row
    locks. Returns how many were accepted.
    """
    return _accept(assignment_ids, None, note)
