"""The engine at scale: claim cursors, reopened items, counters and their repair.

History is made with SQL (as a long-running campaign would have left it); every claim,
submit and verdict under test goes through the services. Plans are read with EXPLAIN
ANALYZE inside a savepoint that is rolled back.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotator_app.celery import app
from annotator_app.work import selectors
from annotator_app.work.claiming import CLAIM_BREADTH_FIRST, CLAIM_DEPTH_FIRST
from annotator_app.work.counters import counters_repair_campaign
from annotator_app.work.models import (
    WRAP_LANE,
    Assignment,
    AssignmentStatus,
    ClaimCursor,
    ReopenedItem,
    WorkItem,
)
from annotator_app.work.services import (
    assignment_next,
    assignment_release,
    assignment_skip,
    assignment_submit,
    assignment_verdict,
    assignments_accept_bulk,
    assignments_reclaim_expired,
    campaign_update,
)
from annotator_app.work.tasks import repair_counters
from tests.work.conftest import make_campaign

HISTORY = 2000


def give_history(campaign_id: int, user_id: int, n: int, *, start: int = 0) -> list[int]:
    """`n` submitted assignments of `user_id` on the campaign's items from `start` on
    (in id order); each item keeps its other slots open. Returns the item ids."""
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH mine AS (
                UPDATE work_workitem SET open_slots = open_slots - 1, done_count = done_count + 1
                WHERE id IN (SELECT id FROM work_workitem WHERE campaign_id = %s
                             ORDER BY id OFFSET %s LIMIT %s)
                RETURNING id
            )
            INSERT INTO work_assignment (item_id, annotator_id, status, started_at,
                                         submitted_at, active_seconds, review_reason)
            SELECT id, %s, 'submitted', now(), now(), 30, '' FROM mine RETURNING item_id
            """,
            [campaign_id, start, n, user_id],
        )
        items = sorted(row[0] for row in cur.fetchall())
        cur.execute("ANALYZE work_workitem, work_assignment")
    counters_repair_campaign(campaign_id=campaign_id)
    return items


def analyzed(sql: str, params: dict[str, object]) -> str:
    """EXPLAIN ANALYZE of a writing statement, rolled back."""
    with connection.cursor() as cur:
        cur.execute("SAVEPOINT plan")
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK TO SAVEPOINT plan")
    return plan


def scan_rows(plan: str, index: str) -> int:
    """Rows the index scan of work_workitem handed up (candidates it walked past + 1)."""
    match = re.search(
        rf"Index Scan using {index} on work_workitem w \(actual rows=(\d+) loops=1\)", plan
    )
    assert match, plan
    return int(match.group(1))


def probes(plan: str) -> int:
    """How many per-item "had it already" probes ran."""
    match = re.search(
        r"Index Scan using \S+ on work_assignment a \((?:actual rows=\d+ loops=(\d+)|never executed)\)",
        plan,
    )
    assert match, plan
    return int(match.group(1) or 0)


def truth(campaign_id: int) -> dict[str, int]:
    """A campaign's figures counted from its rows, the slow way."""
    rows = Assignment.objects.filter(item__campaign_id=campaign_id)
    items = WorkItem.objects.filter(campaign_id=campaign_id)
    figures = {s: rows.filter(status=s).count() for s in AssignmentStatus.values}
    figures["items"] = items.count()
    figures["remaining"] = sum(items.values_list("open_slots", flat=True))
    return figures


def assert_counters_true(campaign) -> None:  # type: ignore[no-untyped-def]
    shown = selectors.campaign_progress(campaign=campaign)
    real = truth(campaign.pk)
    assert (shown.items, shown.remaining) == (real["items"], real["remaining"])
    assert shown.in_progress == real["leased"] and shown.awaiting_review == real["submitted"]
    assert (shown.accepted, shown.rejected) == (real["accepted"], real["rejected"])
    assert (shown.skipped, shown.expired) == (real["skipped"], real["expired"])
    assert counters_repair_campaign(campaign_id=campaign.pk) == 0, "counters had drifted"


# --- claims that do not walk the annotator's history ---------------------------------------


@pytest.mark.slow  # 2,500 items and a 2,000-item history: seconds on 2 loaded cores
@pytest.mark.django_db
def test_heavy_annotator_claim_starts_after_their_history_depth_first(cast):
    campaign = make_campaign(HISTORY + 500, "heavy-depth", overlap=3)
    had = set(give_history(campaign.pk, cast.owner.pk, HISTORY))

    # The first claim walks the history once (there is no cursor yet) and leaves one.
    first = assignment_next(user=cast.owner, campaign=campaign)
    assert first is not None and first.item_id not in had and first.item_id > max(had)
    assignment_submit(assignment=first)
    cursor = ClaimCursor.objects.get(campaign=campaign, annotator=cast.owner, lane=0)
    assert cursor.after_id == first.item_id

    now = timezone.now()
    base = {"c": campaign.pk, "now": now, "until": now, "lane": 0}
    heavy = analyzed(CLAIM_DEPTH_FIRST, {**base, "u": cast.owner.pk, "after": cursor.after_id})
    fresh = analyzed(CLAIM_DEPTH_FIRST, {**base, "u": cast.other.pk, "after": 0})
    # Both read one candidate and probe it once: the 2,000 items the heavy annotator
    # already had (all still open) are never read.
    assert scan_rows(heavy, "workitem_open") == scan_rows(fresh, "workitem_open") == 1
    assert probes(heavy) == probes(fresh) == 1

    second = assignment_next(user=cast.owner, campaign=campaign)
    assert second is not None and second.item_id > first.item_id


@pytest.mark.slow  # 2,500 items and a 2,000-item history: seconds on 2 loaded cores
@pytest.mark.django_db
def test_heavy_annotator_claim_starts_after_their_history_breadth_first(cast):
    campaign = make_campaign(HISTORY + 500, "heavy-breadth", overlap=3, breadth_first=True)
    had = set(give_history(campaign.pk, cast.owner.pk, HISTORY))
    # Someone else's started item beyond the history: breadth-first serves it first.
    other_started = give_history(campaign.pk, cast.reviewer.pk, 1, start=HISTORY + 100)[0]

    first = assignment_next(user=cast.owner, campaign=campaign)
    assert first is not None and first.item_id == other_started
    assignment_submit(assignment=first)
    second = assignment_next(user=cast.owner, campaign=campaign)
    assert second is not None and second.item_id not in had and second.item.done_count == 0

    cursors = dict(
        ClaimCursor.objects.filter(campaign=campaign, annotator=cast.owner).values_list(
            "lane", "after_id"
        )
    )
    now = timezone.now()
    base = {"c": campaign.pk, "u": cast.owner.pk, "now": now, "until": now}
    for lane in (1, 0):
        plan = analyzed(CLAIM_BREADTH_FIRST, {**base, "lane": lane, "after": cursors[lane]})
        # Level 1 holds the 2,000 started items of the heavy annotator: none is read.
        assert scan_rows(plan, "workitem_open_breadth") <= 1, plan
        assert probes(plan) <= 1, plan


@pytest.mark.django_db
def test_reopened_item_is_served_before_new_ones(cast):
    campaign = make_campaign(4, "reopen", overlap=1)
    a = assignment_next(user=cast.owner, campaign=campaign)
    b = assignment_next(user=cast.other, campaign=campaign)
    assert a is not None and b is not None and a.item_id < b.item_id
    assignment_submit(assignment=a)
    assignment_verdict(assignment=a, reviewer=cast.reviewer, accept=False, reason="blurry")
    assert ReopenedItem.objects.filter(item_id=a.item_id).exists()
    # The other annotator's cursor is past the rejected item: it comes back first anyway.
    assignment_submit(assignment=b)
    again = assignment_next(user=cast.other, campaign=campaign)
    assert again is not None and again.item_id == a.item_id
    # Full again: its entry goes.
    assert not ReopenedItem.objects.filter(item_id=a.item_id).exists()
    assert_counters_true(campaign)


@pytest.mark.django_db
def test_wrap_around_serves_items_the_cursor_passed(cast):
    campaign = make_campaign(3, "wrap", overlap=2)
    top = WorkItem.objects.filter(campaign=campaign).order_by("-id").first()
    assert top is not None
    # As if the forward scan had passed every item while others held them locked.
    ClaimCursor.objects.create(campaign=campaign, annotator=cast.owner, lane=0, after_id=top.pk)
    got = []
    while (claimed := assignment_next(user=cast.owner, campaign=campaign)) is not None:
        got.append(claimed.item_id)
        assignment_submit(assignment=claimed)
    assert sorted(got) == sorted(
        WorkItem.objects.filter(campaign=campaign).values_list("pk", flat=True)
    )
    assert ClaimCursor.objects.get(campaign=campaign, annotator=cast.owner, lane=WRAP_LANE)


@pytest.mark.django_db
def test_overlap_raise_reaches_items_behind_every_cursor(cast):
    campaign = make_campaign(2, "raise", overlap=1)
    mine = assignment_next(user=cast.owner, campaign=campaign)
    theirs = assignment_next(user=cast.other, campaign=campaign)
    assert mine is not None and theirs is not None
    assignment_submit(assignment=mine)
    assignment_submit(assignment=theirs)
    assert assignment_next(user=cast.other, campaign=campaign) is None
    campaign_update(campaign=campaign, overlap=2)
    assert not ClaimCursor.objects.filter(campaign=campaign).exists()
    swapped = assignment_next(user=cast.other, campaign=campaign)
    assert swapped is not None and swapped.item_id == mine.item_id
    assert_counters_true(campaign)


# --- counters --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_counters_follow_every_move(cast):
    campaign = make_campaign(6, "moves", overlap=2)
    admin = cast.admin
    assert_counters_true(campaign)
    a = assignment_next(user=cast.owner, campaign=campaign)
    b = assignment_next(user=cast.other, campaign=campaign)
    assert a is not None and b is not None
    assert_counters_true(campaign)
    assignment_submit(assignment=a, active_seconds=40)
    assignment_skip(assignment=b, reason="cannot see it")
    assert_counters_true(campaign)
    c = assignment_next(user=cast.other, campaign=campaign)
    assert c is not None
    assignment_release(assignment=c)
    d = assignment_next(user=cast.other, campaign=campaign)
    assert d is not None
    assignment_submit(assignment=d, active_seconds=20)
    assignment_verdict(assignment=a, reviewer=admin, accept=False, reason="wrong image")
    assert assignments_accept_bulk(assignment_ids=[d.pk], reviewer=admin) == 1
    assert_counters_true(campaign)
    # A lease that runs out, is reclaimed, and is taken back by its owner on submit.
    e = assignment_next(user=cast.owner, campaign=campaign)
    assert e is not None
    assert assignments_reclaim_expired(campaign=campaign, now=timezone.now() + timedelta(hours=1))
    assert_counters_true(campaign)
    assignment_submit(assignment=e, active_seconds=10)
    assert_counters_true(campaign)

    progress = selectors.campaign_progress(campaign=campaign)
    assert progress.items == 6 and progress.slots_total == 12
    figures = {p.username: p for p in selectors.annotator_progress(campaign=campaign)}
    assert (figures["owner"].items, figures["owner"].rejected) == (2, 1)
    assert figures["owner"].active_seconds == 50
    assert (figures["other"].items, figures["other"].accepted) == (1, 1)
    assert selectors.completions_by_day(campaign=campaign)[-1][1] == 3


@pytest.mark.django_db
def test_items_complete_counts_items_with_overlap_submissions(cast):
    campaign = make_campaign(1, "complete", overlap=2)
    first = assignment_next(user=cast.owner, campaign=campaign)
    second = assignment_next(user=cast.other, campaign=campaign)
    assert first is not None and second is not None
    assignment_submit(assignment=first)
    assert selectors.campaign_progress(campaign=campaign).items_complete == 0
    assignment_submit(assignment=second)
    assert selectors.campaign_progress(campaign=campaign).items_complete == 1
    assignment_verdict(assignment=second, reviewer=cast.admin, accept=False, reason="no")
    assert selectors.campaign_progress(campaign=campaign).items_complete == 0
    assert_counters_true(campaign)


@pytest.mark.django_db
def test_progress_reads_counters_not_items_or_assignments(cast, api_as):
    campaign = make_campaign(50, "reads", overlap=2)
    leased = assignment_next(user=cast.owner, campaign=campaign)
    assert leased is not None
    assignment_submit(assignment=leased)
    admin_page = Client()
    admin_page.force_login(cast.admin)
    with CaptureQueriesContext(connection) as seen:
        body = api_as(cast.admin).get(f"/api/v1/work/campaigns/{campaign.pk}/progress/").json()
        api_as(cast.owner).get("/api/v1/work/progress/me/")
        page = admin_page.get("/work/dashboard/")
    assert body["items"] == 50 and body["awaiting_review"] == 1 and page.status_code == 200
    scanned = [
        q["sql"] for q in seen.captured_queries
        if re.search(r"\bwork_(workitem|assignment)\b", q["sql"])
    ]  # fmt: skip
    assert not scanned, scanned


@pytest.mark.slow  # starts a Celery worker
@pytest.mark.django_db(transaction=True)
def test_forced_drift_is_repaired_by_the_beat_task(cast, api_as):
    campaign = make_campaign(5, "drift", overlap=2)
    leased = assignment_next(user=cast.owner, campaign=campaign)
    assert leased is not None
    assignment_submit(assignment=leased, active_seconds=90)
    url = f"/api/v1/work/campaigns/{campaign.pk}/progress/"
    right = api_as(cast.admin).get(url).json()
    with connection.cursor() as cur:
        # Drift of every kind: counters off, a counter row gone, a day that never was.
        cur.execute(
            "UPDATE work_campaigncounter SET open_slots = open_slots + 7, submitted = 40,"
            " items = items - 2 WHERE campaign_id = %s",
            [campaign.pk],
        )
        cur.execute("DELETE FROM work_annotatorcounter WHERE campaign_id = %s", [campaign.pk])
        cur.execute(
            "INSERT INTO work_campaigndaycounter (campaign_id, day, shard, submissions)"
            " VALUES (%s, current_date - 3, 0, 12)",
            [campaign.pk],
        )
    wrong = api_as(cast.admin).get(url).json()
    assert wrong != right and wrong["annotators"] == []

    with start_worker(app, pool="solo", perform_ping_check=False, queues="default"):
        repair_counters.delay()
        deadline = time.monotonic() + 60
        while api_as(cast.admin).get(url).json() != right:
            assert time.monotonic() < deadline, "the worker never repaired the counters"
            time.sleep(0.2)
    assert counters_repair_campaign(campaign_id=campaign.pk) == 0
    assert_counters_true(campaign)


def test_beat_schedule_runs_the_counter_repair():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["work-repair-counters"]
    assert entry["task"] == repair_counters.name
