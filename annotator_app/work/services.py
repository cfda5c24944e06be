"""Work writes: campaigns, their items, and every move of an assignment.

Each function keeps `WorkItem.open_slots` and `WorkItem.done_count` in step with the
assignment it changes, in the same transaction (see ALGORITHM.md for the invariants).
Locking order, everywhere: assignment row first, then its item row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotator_app.accounts.models import User
from annotator_app.catalog.models import Image
from annotator_app.work.models import (
    SLOT_HOLDING,
    Assignment,
    AssignmentStatus,
    Campaign,
    CollectionMethod,
    WorkItem,
)

# Expired leases reclaimed per sweep statement (the beat task loops until none remain).
RECLAIM_BATCH = 500


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
    for key, value in fields.items():
        setattr(campaign, key, value)
    _check(campaign)
    with transaction.atomic():
        campaign.save()
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
    item's open slots from its overlap. Returns counts of created/removed items.
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
        _recompute_open_slots(cur, campaign)
    return {"created": created, "removed": removed}


def _recompute_open_slots(cur: Any, campaign: Campaign) -> None:
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


# --- claiming ------------------------------------------------------------------------------


def _lease_end(campaign: Campaign, now: datetime) -> datetime:
    return now + timedelta(seconds=campaign.lease_seconds)


def _campaigns_for(campaign: Campaign | None, kind: str | None) -> list[Campaign]:
    if campaign is not None:
        # The claim statement itself checks that the campaign is still active.
        return [campaign] if kind is None or campaign.kind == kind else []
    campaigns = Campaign.objects.filter(active=True)
    if kind is not None:
        campaigns = campaigns.filter(kind=kind)
    return list(campaigns.order_by("-priority", "id"))


def _loaded(assignment_id: int) -> Assignment:
    return Assignment.objects.select_related("item__campaign", "item__image").get(pk=assignment_id)


def _writing() -> Any:
    """The caller's transaction when there is one (no savepoint), else a new one.

    Every move validates before it writes, so a refusal leaves the caller's
    transaction usable.
    """
    return nullcontext() if connection.in_atomic_block else transaction.atomic()


def assignment_next(
    *, user: User, campaign: Campaign | None = None, kind: str | None = None
) -> Assignment | None:
    """The user's live lease, else a newly claimed item; None when nothing is left.

    In order: (1) a lease the user holds (a reload gets the same item; the lease is
    renewed); (2) an item of theirs whose lease was reclaimed but whose slot is still
    free (their work is never lost); (3) a new item, over active campaigns by
    priority, claimed with FOR UPDATE SKIP LOCKED. Filters: one campaign and/or kind.
    """
    with transaction.atomic():
        now = timezone.now()
        if _lock_user_has_turns(user):
            mine = _own_turn(user=user, campaign=campaign, kind=kind, now=now)
            if mine is not None:
                return mine
        for candidate in _campaigns_for(campaign, kind):
            claimed = _claim(user=user, campaign=candidate, now=now)
            if claimed is None and assignments_reclaim_expired(campaign=candidate, now=now):
                claimed = _claim(user=user, campaign=candidate, now=now)
            if claimed is not None:
                return claimed
    return None


def _lock_user_has_turns(user: User) -> bool:
    """Serialise "next" per user (a double click must not claim two items), then say
    whether they hold any lease, live or reclaimed.

    Two statements on purpose: the check must run after the lock is granted, with a
    snapshot that sees what the previous "next" of this user committed.
    """
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM accounts_user WHERE id = %s FOR NO KEY UPDATE", [user.pk])
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM work_assignment WHERE annotator_id = %s"
            " AND status IN ('leased', 'expired'))",
            [user.pk],
        )
        row = cur.fetchone()
    return bool(row and row[0])


def _own_turn(
    *, user: User, campaign: Campaign | None, kind: str | None, now: datetime
) -> Assignment | None:
    """Renew the user's live lease, or give back a reclaimed one whose slot is free."""
    scope = Q(item__campaign__active=True)
    if campaign is not None:
        scope &= Q(item__campaign=campaign)
    if kind is not None:
        scope &= Q(item__campaign__kind=kind)
    turns = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item__campaign", "item__image")
        .filter(scope, annotator=user)
        .filter(
            Q(status=AssignmentStatus.LEASED)
            | Q(status=AssignmentStatus.EXPIRED, item__open_slots__gt=0)
        )
        # Leases first ("expired" sorts after "leased"), then by priority.
        .order_by("-status", "-item__campaign__priority", "started_at", "id")[:5]
    )
    for turn in turns:
        if turn.status == AssignmentStatus.EXPIRED:
            taken = WorkItem.objects.filter(pk=turn.item_id, open_slots__gt=0).update(
                open_slots=F("open_slots") - 1
            )
            if not taken:
                continue
            turn.status = AssignmentStatus.LEASED
            turn.heartbeat_at = now
        turn.leased_until = _lease_end(turn.item.campaign, now)
        turn.save(update_fields=["status", "leased_until", "heartbeat_at"])
        return turn
    return None


_CLAIM_SQL = """
WITH picked AS (
    SELECT w.id FROM work_workitem w
    WHERE w.campaign_id = %(c)s AND w.open_slots > 0
      AND EXISTS (SELECT 1 FROM work_campaign c WHERE c.id = %(c)s AND c.active)
      -- A per-item probe by item_id: OFFSET 0 prevents an anti-join and "+ 0" the
      -- annotator index, either of which reads the annotator's whole history.
      AND NOT EXISTS (SELECT 1 FROM work_assignment a
                      WHERE a.item_id = w.id AND a.annotator_id + 0 = %(u)s OFFSET 0)
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE work_workitem w SET open_slots = w.open_slots - 1
    FROM picked WHERE w.id = picked.id
    RETURNING w.id, w.image_id, w.open_slots, w.done_count, w.created_at
), leased AS (
    INSERT INTO work_assignment (item_id, annotator_id, status, leased_until, heartbeat_at,
                                 started_at, active_seconds, review_reason)
    SELECT taken.id, %(u)s, 'leased', %(until)s, %(now)s, %(now)s, 0, '' FROM taken
    RETURNING id, item_id
)
SELECT leased.id, taken.id, taken.image_id, taken.open_slots, taken.done_count,
       taken.created_at
FROM leased JOIN taken ON taken.id = leased.item_id
"""
_CLAIM_DEPTH_FIRST = _CLAIM_SQL.format(order="w.id")
_CLAIM_BREADTH_FIRST = _CLAIM_SQL.format(order="w.done_count DESC, w.id")


def _claim(*, user: User, campaign: Campaign, now: datetime) -> Assignment | None:
    """One statement: pick an open item the user never had, take a slot, insert the lease.

    Reads the partial index on open items (campaign, id) or (campaign, done_count
    DESC, id), so it never scans finished items; SKIP LOCKED lets concurrent claimers
    pass each other instead of queueing on the same row. The image loads on access.
    """
    sql = _CLAIM_BREADTH_FIRST if campaign.breadth_first else _CLAIM_DEPTH_FIRST
    until = _lease_end(campaign, now)
    with connection.cursor() as cur:
        cur.execute(sql, {"c": campaign.pk, "u": user.pk, "now": now, "until": until})
        row = cur.fetchone()
    if row is None:
        return None
    assignment_id, item_id, image_id, open_slots, done_count, created_at = row
    item = WorkItem(
        id=item_id,
        campaign=campaign,
        image_id=image_id,
        open_slots=open_slots,
        done_count=done_count,
        created_at=created_at,
    )
    item._state.adding = False
    assignment = Assignment(
        id=assignment_id,
        item=item,
        annotator=user,
        status=AssignmentStatus.LEASED,
        leased_until=until,
        heartbeat_at=now,
        started_at=now,
    )
    assignment._state.adding = False
    return assignment


def assignments_reclaim_expired(
    *, campaign: Campaign | None = None, now: datetime | None = None, limit: int = RECLAIM_BATCH
) -> int:
    """Mark up to `limit` leases past their end as expired and free their slots.

    Reads the partial index on leased rows by `leased_until`; rows another transaction
    holds are skipped (SKIP LOCKED). Returns how many leases were reclaimed.
    """
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            WITH gone AS (
                SELECT a.id FROM work_assignment a
                JOIN work_workitem w ON w.id = a.item_id
                WHERE a.status = 'leased' AND a.leased_until < %(now)s
                  AND (%(c)s::bigint IS NULL OR w.campaign_id = %(c)s)
                ORDER BY a.leased_until
                LIMIT %(limit)s
                FOR UPDATE OF a SKIP LOCKED
            )
            UPDATE work_assignment a SET status = 'expired'
            FROM gone WHERE a.id = gone.id
            RETURNING a.item_id
            """,
            {"now": now, "limit": limit, "c": campaign.pk if campaign else None},
        )
        item_ids = sorted(row[0] for row in cur.fetchall())
        if item_ids:
            # Same lock order as everyone else: items by id, after the assignments.
            cur.execute(
                "SELECT id FROM work_workitem WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [item_ids],
            )
            cur.execute(
                """
                UPDATE work_workitem w SET open_slots = w.open_slots + f.n
                FROM (SELECT id, count(*) AS n FROM unnest(%s::bigint[]) AS t(id) GROUP BY id) f
                WHERE w.id = f.id
                """,
                [item_ids],
            )
    return len(item_ids)


# --- the annotator's moves -----------------------------------------------------------------


def _locked(assignment: Assignment, *, campaign: bool = False) -> Assignment:
    rows = Assignment.objects.select_for_update(of=("self",))
    if campaign:
        rows = rows.select_related("item__campaign")
    return rows.get(pk=assignment.pk)


def _hold_slot(locked: Assignment, *, action: str) -> None:
    """Let the owner of a reclaimed lease go on when the item still has a free slot."""
    if locked.status == AssignmentStatus.LEASED:
        return
    if locked.status == AssignmentStatus.EXPIRED:
        taken = WorkItem.objects.filter(pk=locked.item_id, open_slots__gt=0).update(
            open_slots=F("open_slots") - 1
        )
        if taken:
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


_SUBMIT_SQL = """
WITH done AS (
    UPDATE work_assignment SET status = 'submitted', submitted_at = %s, active_seconds = %s
    WHERE id = %s RETURNING item_id
)
UPDATE work_workitem w SET done_count = w.done_count + 1 FROM done WHERE w.id = done.item_id
"""


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
        with connection.cursor() as cur:
            cur.execute(_SUBMIT_SQL, [locked.submitted_at, locked.active_seconds, locked.pk])
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
        if locked.status == AssignmentStatus.LEASED:
            WorkItem.objects.filter(pk=locked.item_id).update(open_slots=F("open_slots") + 1)
        locked.status = AssignmentStatus.SKIPPED
        locked.skip_reason = reason
        locked.save(update_fields=["status", "skip_reason"])
    return locked


def assignment_release(*, assignment: Assignment) -> None:
    """Hand the item back untouched: the row goes, so it may be offered to them later."""
    with transaction.atomic():
        locked = _locked(assignment)
        if locked.status not in (AssignmentStatus.LEASED, AssignmentStatus.EXPIRED):
            raise AssignmentStateError(f"cannot release: the assignment is {locked.status}")
        if locked.status == AssignmentStatus.LEASED:
            WorkItem.objects.filter(pk=locked.item_id).update(open_slots=F("open_slots") + 1)
        locked.delete()


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
        if not accept:
            WorkItem.objects.filter(pk=locked.item_id).update(
                open_slots=F("open_slots") + 1, done_count=F("done_count") - 1
            )
    return locked


def assignments_accept_bulk(*, assignment_ids: Sequence[int], reviewer: User) -> int:
    """Accept many submissions in one statement (the reviewer's "accept all shown").

    Skips ids that are not submitted or are the reviewer's own; acceptance changes no
    counters. The caller checks the reviewer's campaigns. Returns how many were accepted.
    """
    return (
        Assignment.objects.filter(pk__in=list(assignment_ids), status=AssignmentStatus.SUBMITTED)
        .exclude(annotator=reviewer)
        .update(
            status=AssignmentStatus.ACCEPTED,
            reviewed_by=reviewer,
            reviewed_at=timezone.now(),
            review_reason="",
        )
    )


def assignments_accept_agreed(*, assignment_ids: Sequence[int], note: str = "") -> int:
    """Accept submissions that a quality check passed (annotators agreed), with no reviewer.

    Call inside the transaction that stored the check, holding the assignments' row
    locks; acceptance changes no counters. Returns how many were accepted.
    """
    return Assignment.objects.filter(
        pk__in=list(assignment_ids), status=AssignmentStatus.SUBMITTED
    ).update(
        status=AssignmentStatus.ACCEPTED,
        reviewed_by=None,
        reviewed_at=timezone.now(),
        review_reason=note,
    )
