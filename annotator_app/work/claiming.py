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
from annotator_app.work.counters import COUNTER_SHARDS, count_item, count_items
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

    A campaign with nothing open but leases past their end gets them reclaimed, in a
    transaction of its own (never while a claim holds item and counter locks), and the
    claim starts over once.
    """
    now = timezone.now()
    claimed, expired_in = _next_once(user=user, campaign=campaign, kind=kind, now=now)
    if expired_in is None:
        return claimed
    assignments_reclaim_expired(campaign=expired_in, now=now)
    claimed, _ = _next_once(user=user, campaign=campaign, kind=kind, now=now, reclaimed=True)
    return claimed


def _next_once(
    *, user: User, campaign: Campaign | None, kind: str | None, now: datetime,
    reclaimed: bool = False,
) -> tuple[Assignment | None, Campaign | None]:  # fmt: skip
    """One try in one transaction: (the assignment, None), or (None, a campaign to
    reclaim expired leases of before trying again)."""
    with transaction.atomic():
        has_turns, cursors, reopened = _lock_user(user)
        if has_turns:
            mine = _own_turn(user=user, campaign=campaign, kind=kind, now=now)
            if mine is not None:
                return mine, None
        for candidate in _campaigns_for(campaign, kind):
            claimed = _claim(
                user=user,
                campaign=candidate,
                now=now,
                cursors=cursors.get(candidate.pk, {}),
                reopened=candidate.pk in reopened,
            )
            if claimed is not None:
                return claimed, None
            if not reclaimed and _has_expired_leases(candidate, now):
                return None, candidate
    return None, None


def _has_expired_leases(campaign: Campaign, now: datetime) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM work_assignment a JOIN work_workitem w"
            " ON w.id = a.item_id WHERE a.status = 'leased' AND a.leased_until < %s"
            " AND w.campaign_id = %s)",
            [now, campaign.pk],
        )
        row = cur.fetchone()
    return bool(row and row[0])


def _lock_user(user: User) -> tuple[bool, dict[int, dict[int, int]], set[int]]:
    """Serialise "next" per user (a double click must not claim two items), then say
    whether they hold any lease, live or reclaimed, read their claim cursors
    ({campaign id: {lane: after id}}), and which active campaigns list reopened items.

    Two statements on purpose: the check must run after the lock is granted, with a
    snapshot that sees what the previous "next" of this user committed.
    """
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM accounts_user WHERE id = %s FOR NO KEY UPDATE", [user.pk])
        cur.execute(
            """
            SELECT EXISTS (SELECT 1 FROM work_assignment WHERE annotator_id = %(u)s
                           AND status IN ('leased', 'expired')),
                   ARRAY(SELECT ARRAY[campaign_id, lane, after_id] FROM work_claimcursor
                         WHERE annotator_id = %(u)s),
                   ARRAY(SELECT c.id FROM work_campaign c WHERE c.active AND EXISTS
                         (SELECT 1 FROM work_reopeneditem r WHERE r.campaign_id = c.id))
            """,
            {"u": user.pk},
        )
        has_turns, rows, reopened = cur.fetchone() or (False, [], [])
    cursors: dict[int, dict[int, int]] = {}
    for campaign_id, lane, after in rows:
        cursors.setdefault(campaign_id, {})[lane] = after
    return bool(has_turns), cursors, set(reopened)


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

# The claim itself, after `picked` chose the item: take a slot, insert the lease, and
# count both in the item's counter shard (counters.py), all in one statement.
_TAKE = f"""
, taken AS (
    UPDATE work_workitem w SET open_slots = w.open_slots - 1
    FROM picked WHERE w.id = picked.id
    RETURNING w.id, w.image_id, w.open_slots, w.done_count, w.created_at
), leased AS (
    INSERT INTO work_assignment (item_id, annotator_id, status, leased_until, heartbeat_at,
                                 started_at, active_seconds, review_reason)
    SELECT taken.id, %(u)s, 'leased', %(until)s, %(now)s, %(now)s, 0, '' FROM taken
    RETURNING id, item_id
), counted AS (
    INSERT INTO work_campaigncounter AS t (campaign_id, shard, items, items_complete,
        open_slots, leased, submitted, accepted, rejected, skipped, expired)
    SELECT %(c)s, taken.id %% {COUNTER_SHARDS}, 0, 0, -1, 1, 0, 0, 0, 0, 0 FROM taken
    ON CONFLICT (campaign_id, shard)
    DO UPDATE SET open_slots = t.open_slots - 1, leased = t.leased + 1
)"""  # noqa: S608 (built from constants only)
# A forward or wrap-around claim also moves the lane's cursor to the item it took.
_MOVE_CURSOR = """
, moved AS (
    INSERT INTO work_claimcursor (annotator_id, campaign_id, lane, after_id)
    SELECT %(u)s, %(c)s, %(lane)s, taken.id FROM taken
    ON CONFLICT (annotator_id, campaign_id, lane) DO UPDATE SET after_id = excluded.after_id
)"""
_RESULT = """
SELECT leased.id, taken.id, taken.image_id, taken.open_slots, taken.done_count,
       taken.created_at, NULL::bigint
FROM leased JOIN taken ON taken.id = leased.item_id"""
# When a lane has nothing for the user: the lane's last open item, where its cursor goes.
_TOP = """
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT max(id) FROM work_workitem WHERE campaign_id = %(c)s AND open_slots > 0 {lane})
WHERE NOT EXISTS (SELECT 1 FROM leased)"""

# The forward scan of one lane: open items after the annotator's cursor, in the lane's
# order, through the partial index on open items.
_FORWARD_PICK = """
WITH picked AS (
    SELECT w.id FROM work_workitem w
    WHERE w.campaign_id = %(c)s AND w.open_slots > 0 AND w.id > %(after)s {lane}
      AND {active} AND {not_mine}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)"""
_BREADTH_LANE = "AND w.done_count = %(lane)s"
CLAIM_DEPTH_FIRST = (
    _FORWARD_PICK.format(lane="", order="w.id", active=_ACTIVE, not_mine=_NOT_MINE)
    + _TAKE
    + _MOVE_CURSOR
    + _RESULT
    + _TOP.format(lane="")
)
CLAIM_BREADTH_FIRST = (
    _FORWARD_PICK.format(
        lane=_BREADTH_LANE, order="w.done_count DESC, w.id", active=_ACTIVE, not_mine=_NOT_MINE
    )
    + _TAKE
    + _MOVE_CURSOR
    + _RESULT
    + _TOP.format(lane="AND done_count = %(lane)s")
)

# Items that got a slot back, which the forward scans may have passed while full.
_REOPENED_PICK = """
WITH picked AS (
    SELECT w.id FROM work_reopeneditem r JOIN work_workitem w ON w.id = r.item_id
    WHERE r.campaign_id = %(c)s AND w.open_slots > 0 AND {active} AND {not_mine}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
)"""
CLAIM_REOPENED_DEPTH_FIRST = (
    _REOPENED_PICK.format(order="w.id", active=_ACTIVE, not_mine=_NOT_MINE) + _TAKE + _RESULT
)
CLAIM_REOPENED_BREADTH_FIRST = (
    _REOPENED_PICK.format(order="w.done_count DESC, w.id", active=_ACTIVE, not_mine=_NOT_MINE)
    + _TAKE
    + _RESULT
)


@dataclass(frozen=True)
class _Taken:
    assignment_id: int
    item_id: int
    image_id: int
    open_slots: int
    done_count: int
    created_at: datetime


def _run(sql: str, params: dict[str, Any]) -> tuple[_Taken | None, int | None]:
    """Run a claim statement: (what it took, None) or (None, the lane's last open item)."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        return None, None
    if row[0] is None:
        return None, row[6]
    return _Taken(*row[:6]), None


def _save_cursor(campaign_id: int, user_id: int, lane: int, after: int) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO work_claimcursor (annotator_id, campaign_id, lane, after_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (annotator_id, campaign_id, lane)"
            " DO UPDATE SET after_id = excluded.after_id",
            [user_id, campaign_id, lane, after],
        )


def _forward(campaign: Campaign, params: dict[str, Any], cursors: dict[int, int]) -> _Taken | None:
    """The forward scans, lane by lane (breadth-first: most-done level first).

    A lane with nothing for the user moves its cursor to the lane's last open item:
    everything up to there is the user's own or was locked by another claim, which the
    wrap-around scan (or the reopened list) serves later.
    """
    lanes = range(campaign.overlap - 1, -1, -1) if campaign.breadth_first else [0]
    scan = CLAIM_BREADTH_FIRST if campaign.breadth_first else CLAIM_DEPTH_FIRST
    for lane in lanes:
        after = cursors.get(lane, 0)
        taken, top = _run(scan, {**params, "lane": lane, "after": after})
        if taken is not None:
            return taken
        if top is not None and top > after:
            _save_cursor(campaign.pk, params["u"], lane, top)
    return None


def _wrap(campaign: Campaign, params: dict[str, Any], cursors: dict[int, int]) -> _Taken | None:
    """Every open item in id order, resuming where the last wrap-around claim stopped,
    then from the start: only runs when the reopened list and the forward lanes had
    nothing, so its walk over the user's own open items happens at a campaign's tail."""
    after = cursors.get(WRAP_LANE, 0)
    wrap = {**params, "lane": WRAP_LANE}
    taken, _ = _run(CLAIM_DEPTH_FIRST, {**wrap, "after": after})
    if taken is None and after > 0:
        taken, _ = _run(CLAIM_DEPTH_FIRST, {**wrap, "after": 0})
        if taken is None:
            _save_cursor(campaign.pk, params["u"], WRAP_LANE, 0)
    return taken


def _claim(
    *,
    user: User,
    campaign: Campaign,
    now: datetime,
    cursors: dict[int, int],
    reopened: bool = True,
) -> Assignment | None:
    """Pick an open item the user never had, take a slot, insert the lease.

    Every statement takes its item with FOR UPDATE SKIP LOCKED (concurrent claimers pass
    each other) and probes the user's assignment on that one item only. Call holding
    the user's row lock (assignment_next): cursors are read and written under it.
    `reopened`: whether the campaign listed reopened items when the user was locked
    (a hint: an item reopened since is served by the next claim or the other scans).
    """
    until = _lease_end(campaign, now)
    params: dict[str, Any] = {"c": campaign.pk, "u": user.pk, "now": now, "until": until}
    first = CLAIM_REOPENED_BREADTH_FIRST if campaign.breadth_first else CLAIM_REOPENED_DEPTH_FIRST
    taken, _ = _run(first, params) if reopened else (None, None)
    if taken is not None and taken.open_slots == 0:
        with connection.cursor() as cur:
            cur.execute("DELETE FROM work_reopeneditem WHERE item_id = %s", [taken.item_id])
    if taken is None:
        taken = _forward(campaign, params, cursors)
    if taken is None:
        taken = _wrap(campaign, params, cursors)
    if taken is None:
        return None
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
