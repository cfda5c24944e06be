"""Claiming "next": the user's own lease first, else a new item; and the expiry sweep.

The plan and why it keeps the invariants are in ALGORITHM.md ("Claiming next"). In short,
a new item comes from, in order: (1) the campaign's reopened items (a slot came back),
(2) a forward scan per lane that starts after the annotator's cursor, so it never walks
back over the annotator's own history, (3) a wrap-around scan over every open item, run
only when the first two find nothing, which catches what the cursors passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotator_app.accounts.models import User
from annotator_app.work.counters import count_item, count_items
from annotator_app.work.models import (
    WRAP_LANE,
    Assignment,
    AssignmentStatus,
    Campaign,
    WorkItem,
)

# Expired leases reclaimed per sweep statement (the beat task loops until none remain).
RECLAIM_BATCH = 500


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
            count_item(
                campaign_id=turn.item.campaign_id,
                item_id=turn.item_id,
                expired=-1,
                leased=1,
                open_slots=-1,
            )
        turn.leased_until = _lease_end(turn.item.campaign, now)
        turn.save(update_fields=["status", "leased_until", "heartbeat_at"])
        return turn
    return None


# --- the claim statements ------------------------------------------------------------------

# A per-item probe by item_id: OFFSET 0 prevents an anti-join and "+ 0" the annotator
# index, either of which reads the annotator's whole history.
_NOT_MINE = """NOT EXISTS (SELECT 1 FROM work_assignment a
                      WHERE a.item_id = w.id AND a.annotator_id + 0 = %(u)s OFFSET 0)"""
_ACTIVE = "EXISTS (SELECT 1 FROM work_campaign c WHERE c.id = %(c)s AND c.active)"

_TAKE = """
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

# The forward scan of one lane: open items after the annotator's cursor, in the lane's
# order, through the partial index on open items.
_FORWARD_SQL = (
    """
WITH picked AS (
    SELECT w.id FROM work_workitem w
    WHERE w.campaign_id = %(c)s AND w.open_slots > 0 AND w.id > %(after)s {lane}
      AND {active} AND {not_mine}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""  # noqa: S608 (built from constants only)
    + _TAKE
)
CLAIM_DEPTH_FIRST = _FORWARD_SQL.format(lane="", order="w.id", active=_ACTIVE, not_mine=_NOT_MINE)
CLAIM_BREADTH_FIRST = _FORWARD_SQL.format(
    lane="AND w.done_count = %(lane)s",
    order="w.done_count DESC, w.id",
    active=_ACTIVE,
    not_mine=_NOT_MINE,
)

# Items that got a slot back, which the forward scans may have passed while full.
_REOPENED_SQL = (
    """
WITH picked AS (
    SELECT w.id FROM work_reopeneditem r JOIN work_workitem w ON w.id = r.item_id
    WHERE r.campaign_id = %(c)s AND w.open_slots > 0 AND {active} AND {not_mine}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
"""  # noqa: S608 (built from constants only)
    + _TAKE
)
CLAIM_REOPENED_DEPTH_FIRST = _REOPENED_SQL.format(order="w.id", active=_ACTIVE, not_mine=_NOT_MINE)
CLAIM_REOPENED_BREADTH_FIRST = _REOPENED_SQL.format(
    order="w.done_count DESC, w.id", active=_ACTIVE, not_mine=_NOT_MINE
)

_LANE_TOP_SQL = (
    "SELECT max(id) FROM work_workitem WHERE campaign_id = %(c)s AND open_slots > 0 {lane}"
)
_DEPTH_TOP = _LANE_TOP_SQL.format(lane="")
_BREADTH_TOP = _LANE_TOP_SQL.format(lane="AND done_count = %(lane)s")


@dataclass(frozen=True)
class _Taken:
    assignment_id: int
    item_id: int
    image_id: int
    open_slots: int
    done_count: int
    created_at: datetime


def _run(sql: str, params: dict[str, Any]) -> _Taken | None:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return _Taken(*row) if row else None


def _cursors(campaign_id: int, user_id: int) -> dict[int, int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT lane, after_id FROM work_claimcursor WHERE campaign_id = %s"
            " AND annotator_id = %s",
            [campaign_id, user_id],
        )
        return dict(cur.fetchall())


def _save_cursors(campaign_id: int, user_id: int, moved: dict[int, int]) -> None:
    if not moved:
        return
    rows = [(campaign_id, user_id, lane, after) for lane, after in sorted(moved.items())]
    marks = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO work_claimcursor (campaign_id, annotator_id, lane, after_id)"  # noqa: S608
            f" VALUES {marks} ON CONFLICT (campaign_id, annotator_id, lane)"
            " DO UPDATE SET after_id = excluded.after_id",
            [value for row in rows for value in row],
        )


def _forward(campaign: Campaign, params: dict[str, Any], cursors: dict[int, int],
             moved: dict[int, int]) -> _Taken | None:  # fmt: skip
    """The forward scans, lane by lane (breadth-first: most-done level first).

    A lane with nothing for the user moves its cursor to the lane's last open item:
    everything up to there is the user's own or was locked by another claim, which the
    wrap-around scan (or the reopened list) serves later.
    """
    lanes = range(campaign.overlap - 1, -1, -1) if campaign.breadth_first else [0]
    scan = CLAIM_BREADTH_FIRST if campaign.breadth_first else CLAIM_DEPTH_FIRST
    top = _BREADTH_TOP if campaign.breadth_first else _DEPTH_TOP
    for lane in lanes:
        after = cursors.get(lane, 0)
        taken = _run(scan, {**params, "lane": lane, "after": after})
        if taken is not None:
            moved[lane] = taken.item_id
            return taken
        with connection.cursor() as cur:
            cur.execute(top, {**params, "lane": lane})
            row = cur.fetchone()
        if row and row[0] is not None and row[0] > after:
            moved[lane] = row[0]
    return None


def _wrap(params: dict[str, Any], cursors: dict[int, int],
          moved: dict[int, int]) -> _Taken | None:  # fmt: skip
    """Every open item in id order, resuming where the last wrap-around claim stopped,
    then from the start: only runs when the reopened list and the forward lanes had
    nothing, so its walk over the user's own open items happens at a campaign's tail."""
    after = cursors.get(WRAP_LANE, 0)
    taken = _run(CLAIM_DEPTH_FIRST, {**params, "after": after})
    if taken is None and after > 0:
        taken = _run(CLAIM_DEPTH_FIRST, {**params, "after": 0})
    moved[WRAP_LANE] = taken.item_id if taken is not None else 0
    return taken


def _claim(*, user: User, campaign: Campaign, now: datetime) -> Assignment | None:
    """Pick an open item the user never had, take a slot, insert the lease.

    Every statement takes its item with FOR UPDATE SKIP LOCKED (concurrent claimers pass
    each other) and probes the user's assignment on that one item only. Call holding
    the user's row lock (assignment_next): cursors are read and written under it.
    """
    until = _lease_end(campaign, now)
    params: dict[str, Any] = {"c": campaign.pk, "u": user.pk, "now": now, "until": until}
    cursors = _cursors(campaign.pk, user.pk)
    moved: dict[int, int] = {}
    reopened = (
        CLAIM_REOPENED_BREADTH_FIRST if campaign.breadth_first else CLAIM_REOPENED_DEPTH_FIRST
    )
    taken = _run(reopened, params)
    if taken is not None and taken.open_slots == 0:
        with connection.cursor() as cur:
            cur.execute("DELETE FROM work_reopeneditem WHERE item_id = %s", [taken.item_id])
    if taken is None:
        taken = _forward(campaign, params, cursors, moved)
    if taken is None:
        taken = _wrap(params, cursors, moved)
    _save_cursors(campaign.pk, user.pk, {k: v for k, v in moved.items() if cursors.get(k) != v})
    if taken is None:
        return None
    count_item(campaign_id=campaign.pk, item_id=taken.item_id, open_slots=-1, leased=1)
    item = WorkItem(
        id=taken.item_id,
        campaign=campaign,
        image_id=taken.image_id,
        open_slots=taken.open_slots,
        done_count=taken.done_count,
        created_at=taken.created_at,
    )
    item._state.adding = False
    assignment = Assignment(
        id=taken.assignment_id,
        item=item,
        annotator=user,
        status=AssignmentStatus.LEASED,
        leased_until=until,
        heartbeat_at=now,
        started_at=now,
    )
    assignment._state.adding = False
    return assignment


# --- reopened items and expiry ---------------------------------------------------------------


def items_reopened(*, item_ids: list[int]) -> None:
    """Note items that got a slot back, so claims serve them before new ones; call in
    the transaction that freed the slot."""
    if not item_ids:
        return
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO work_reopeneditem (campaign_id, item_id)
            SELECT w.campaign_id, w.id FROM work_workitem w
            WHERE w.id = ANY(%s::bigint[]) AND w.open_slots > 0
            ORDER BY w.id
            ON CONFLICT (item_id) DO NOTHING
            """,
            [sorted(set(item_ids))],
        )


def reopened_prune(*, limit: int = 5000) -> int:
    """Drop reopened entries whose item is full again; returns how many went.

    Locks the items (SKIP LOCKED, rechecked after the lock), so an item that a move is
    reopening right now keeps its entry.
    """
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            DELETE FROM work_reopeneditem r WHERE r.item_id IN (
                SELECT w.id FROM work_workitem w JOIN work_reopeneditem r2 ON r2.item_id = w.id
                WHERE w.open_slots = 0
                LIMIT %s
                FOR UPDATE OF w SKIP LOCKED
            )
            """,
            [limit],
        )
        return cur.rowcount


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
            items_reopened(item_ids=item_ids)
            count_items(item_ids=item_ids, leased=-1, expired=1, open_slots=1)
    return len(item_ids)
