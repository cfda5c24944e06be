"""Counters of the work engine: campaign totals, submissions per day, per-annotator figures.

Every move of an assignment adds its delta here in its own transaction (the services
call `count_item`/`count_items`/`count_annotator`), so progress pages read a few counter
rows instead of scanning a campaign's items and assignments. Campaign and day counters
are split in COUNTER_SHARDS rows by item id, so concurrent claims on different items
rarely wait on the same counter row.

Counters can still drift when rows change outside the services (a cascade delete, a
hand edit in SQL). `counters_repair` measures the drift of every counter against the
rows it summarises in ONE statement (one snapshot, in which counters and rows agree
unless they drifted: every move changes both in one transaction) and then adds the
opposite of the drift, a relative update, so moves that commit meanwhile are kept.
The beat task `work.repair_counters` runs it; campaign_sync_items runs it for its
campaign.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

COUNTER_SHARDS = 16

CAMPAIGN_FIELDS = (
    "items",
    "items_complete",
    "open_slots",
    "leased",
    "submitted",
    "accepted",
    "rejected",
    "skipped",
    "expired",
)
ANNOTATOR_FIELDS = ("items", "accepted", "rejected", "active_seconds")

_STATUS_FIELDS = ("leased", "submitted", "accepted", "rejected", "skipped", "expired")


def _upsert_sql(table: str, keys: tuple[str, ...], fields: tuple[str, ...]) -> str:
    adds = ", ".join(f"{f} = t.{f} + excluded.{f}" for f in fields)
    return (
        f"INSERT INTO {table} AS t ({', '.join(keys + fields)}) {{rows}} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}"
    )


_CAMPAIGN_UPSERT = _upsert_sql("work_campaigncounter", ("campaign_id", "shard"), CAMPAIGN_FIELDS)
_DAY_UPSERT = _upsert_sql(
    "work_campaigndaycounter", ("campaign_id", "day", "shard"), ("submissions",)
)
_ANNOTATOR_UPSERT = _upsert_sql(
    "work_annotatorcounter", ("campaign_id", "annotator_id"), ANNOTATOR_FIELDS
)


def shard_of(item_id: int) -> int:
    return item_id % COUNTER_SHARDS


def count_day(value: datetime) -> date:
    """The day a submission counts on (the project's TIME_ZONE, as the charts show)."""
    return timezone.localdate(value)


def count_item(*, campaign_id: int, item_id: int, submitted_on: date | None = None,
               **deltas: int) -> None:  # fmt: skip
    """Add `deltas` (CAMPAIGN_FIELDS) to the item's campaign shard; with `submitted_on`,
    also count one submission on that day. Call inside the move's transaction, after
    its other writes (counter rows are the last locks a move takes)."""
    unknown = set(deltas) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ValueError(f"unknown campaign counters: {sorted(unknown)}")
    shard = shard_of(item_id)
    values = [campaign_id, shard, *(deltas.get(f, 0) for f in CAMPAIGN_FIELDS)]
    marks = ", ".join(["%s"] * len(values))
    with connection.cursor() as cur:
        if any(values[2:]):
            cur.execute(_CAMPAIGN_UPSERT.format(rows=f"VALUES ({marks})"), values)
        if submitted_on is not None:
            cur.execute(
                _DAY_UPSERT.format(rows="VALUES (%s, %s, %s, 1)"),
                [campaign_id, submitted_on, shard],
            )


def count_items(*, item_ids: Iterable[int], **per_item: int) -> None:
    """Add `per_item` deltas once per listed item (repeats count again), set-based."""
    ids = list(item_ids)
    if not ids or not any(per_item.values()):
        return
    sums = ", ".join(f"count(*) * %({f})s" for f in CAMPAIGN_FIELDS)
    select = (
        f"SELECT w.campaign_id, w.id %% {COUNTER_SHARDS}, {sums} "  # noqa: S608
        "FROM unnest(%(ids)s::bigint[]) AS t(id) JOIN work_workitem w ON w.id = t.id "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    params: dict[str, Any] = {f: per_item.get(f, 0) for f in CAMPAIGN_FIELDS}
    params["ids"] = ids
    with connection.cursor() as cur:
        cur.execute(_CAMPAIGN_UPSERT.format(rows=select), params)


def count_annotator(*, campaign_id: int, annotator_id: int, **deltas: int) -> None:
    """Add `deltas` (ANNOTATOR_FIELDS) to one annotator's figures in one campaign."""
    values = [campaign_id, annotator_id, *(deltas.get(f, 0) for f in ANNOTATOR_FIELDS)]
    with connection.cursor() as cur:
        cur.execute(_ANNOTATOR_UPSERT.format(rows="VALUES (%s, %s, %s, %s, %s, %s)"), values)


def count_annotators_accepted(*, assignment_ids: Iterable[int]) -> None:
    """One more accepted submission per listed assignment, for its annotator."""
    ids = list(assignment_ids)
    if not ids:
        return
    select = (
        "SELECT w.campaign_id, a.annotator_id, 0, count(*), 0, 0 "
        "FROM work_assignment a JOIN work_workitem w ON w.id = a.item_id "
        "WHERE a.id = ANY(%s::bigint[]) GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with connection.cursor() as cur:
        cur.execute(_ANNOTATOR_UPSERT.format(rows=select), [ids])


# --- repair --------------------------------------------------------------------------------

# The statements below are built from this module's constants only.
_CAMPAIGN_DRIFT_SQL = f"""
WITH items AS (
    SELECT w.id %% {COUNTER_SHARDS} AS shard, count(*) AS items,
           count(*) FILTER (WHERE w.done_count >= c.overlap) AS items_complete,
           sum(w.open_slots) AS open_slots
    FROM work_workitem w JOIN work_campaign c ON c.id = w.campaign_id
    WHERE w.campaign_id = %(c)s GROUP BY 1
), states AS (
    SELECT w.id %% {COUNTER_SHARDS} AS shard,
           {", ".join(f"count(*) FILTER (WHERE a.status = '{s}') AS {s}" for s in _STATUS_FIELDS)}
    FROM work_assignment a JOIN work_workitem w ON w.id = a.item_id
    WHERE w.campaign_id = %(c)s GROUP BY 1
), truth AS (
    SELECT coalesce(i.shard, s.shard) AS shard,
           {", ".join(f"coalesce(i.{f}, 0) AS {f}" for f in CAMPAIGN_FIELDS[:3])},
           {", ".join(f"coalesce(s.{f}, 0) AS {f}" for f in _STATUS_FIELDS)}
    FROM items i FULL JOIN states s ON s.shard = i.shard
), stored AS (
    SELECT * FROM work_campaigncounter WHERE campaign_id = %(c)s
)
SELECT coalesce(t.shard, k.shard),
       {", ".join(f"coalesce(k.{f}, 0) - coalesce(t.{f}, 0)" for f in CAMPAIGN_FIELDS)}
FROM truth t FULL JOIN stored k ON k.shard = t.shard
ORDER BY 1
"""  # noqa: S608

_DAY_DRIFT_SQL = f"""
WITH truth AS (
    SELECT (a.submitted_at AT TIME ZONE %(tz)s)::date AS day, w.id %% {COUNTER_SHARDS} AS shard,
           count(*) AS n
    FROM work_assignment a JOIN work_workitem w ON w.id = a.item_id
    WHERE w.campaign_id = %(c)s AND a.submitted_at IS NOT NULL
      AND a.status IN ('submitted', 'accepted', 'rejected')
    GROUP BY 1, 2
), stored AS (
    SELECT day, shard, submissions AS n FROM work_campaigndaycounter WHERE campaign_id = %(c)s
)
SELECT coalesce(t.day, k.day), coalesce(t.shard, k.shard), coalesce(k.n, 0) - coalesce(t.n, 0)
FROM truth t FULL JOIN stored k ON k.day = t.day AND k.shard = t.shard
ORDER BY 1, 2
"""  # noqa: S608

_ANNOTATOR_DRIFT_SQL = """
WITH truth AS (
    SELECT a.annotator_id, count(*) AS items,
           count(*) FILTER (WHERE a.status = 'accepted') AS accepted,
           count(*) FILTER (WHERE a.status = 'rejected') AS rejected,
           coalesce(sum(a.active_seconds), 0) AS active_seconds
    FROM work_assignment a JOIN work_workitem w ON w.id = a.item_id
    WHERE w.campaign_id = %(c)s AND a.status IN ('submitted', 'accepted', 'rejected')
    GROUP BY 1
), stored AS (
    SELECT * FROM work_annotatorcounter WHERE campaign_id = %(c)s
)
SELECT coalesce(t.annotator_id, k.annotator_id),
       coalesce(k.items, 0) - coalesce(t.items, 0),
       coalesce(k.accepted, 0) - coalesce(t.accepted, 0),
       coalesce(k.rejected, 0) - coalesce(t.rejected, 0),
       coalesce(k.active_seconds, 0) - coalesce(t.active_seconds, 0)
FROM truth t FULL JOIN stored k ON k.annotator_id = t.annotator_id
ORDER BY 1
"""


def counters_repair_campaign(*, campaign_id: int) -> int:
    """Bring one campaign's counters back to the rows they count; returns how many
    counter rows had drifted (0 when all agreed)."""
    fixed = 0
    with connection.cursor() as cur:
        cur.execute(_CAMPAIGN_DRIFT_SQL, {"c": campaign_id})
        for shard, *drift in cur.fetchall():
            if any(drift):
                values = [campaign_id, shard, *(-d for d in drift)]
                marks = ", ".join(["%s"] * len(values))
                cur.execute(_CAMPAIGN_UPSERT.format(rows=f"VALUES ({marks})"), values)
                fixed += 1
        cur.execute(_DAY_DRIFT_SQL, {"c": campaign_id, "tz": settings.TIME_ZONE})
        for day, shard, drift in cur.fetchall():
            if drift:
                cur.execute(
                    _DAY_UPSERT.format(rows="VALUES (%s, %s, %s, %s)"),
                    [campaign_id, day, shard, -drift],
                )
                fixed += 1
        cur.execute(_ANNOTATOR_DRIFT_SQL, {"c": campaign_id})
        for annotator_id, *drift in cur.fetchall():
            if any(drift):
                values = [campaign_id, annotator_id, *(-d for d in drift)]
                cur.execute(
                    _ANNOTATOR_UPSERT.format(rows="VALUES (%s, %s, %s, %s, %s, %s)"), values
                )
                fixed += 1
    return fixed


def counters_repair() -> dict[int, int]:
    """Repair every campaign's counters; returns {campaign id: drifted rows} for those
    that had drifted."""
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM work_campaign ORDER BY id")
        campaign_ids = [row[0] for row in cur.fetchall()]
    drifted = {}
    for campaign_id in campaign_ids:
        fixed = counters_repair_campaign(campaign_id=campaign_id)
        if fixed:
            drifted[campaign_id] = fixed
    return drifted
