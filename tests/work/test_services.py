"""The assignment life cycle through the services, checked against the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotator_app.work.models import Assignment, AssignmentStatus, WorkItem
from annotator_app.work.services import (
    AssignmentStateError,
    assignment_heartbeat,
    assignment_next,
    assignment_release,
    assignment_skip,
    assignment_submit,
    assignment_verdict,
    assignments_reclaim_expired,
    campaign_update,
)
from tests.work.conftest import make_campaign

pytestmark = pytest.mark.django_db


def slots(item_id: int) -> tuple[int, int]:
    item = WorkItem.objects.get(pk=item_id)
    return item.open_slots, item.done_count


def test_reload_returns_the_same_lease_and_renews_it(cast, campaign):
    first = assignment_next(user=cast.owner)
    assert first is not None and first.status == AssignmentStatus.LEASED
    Assignment.objects.filter(pk=first.pk).update(leased_until=timezone.now())
    again = assignment_next(user=cast.owner)
    assert again is not None and again.pk == first.pk
    assert again.leased_until > timezone.now() + timedelta(seconds=500)
    assert Assignment.objects.filter(annotator=cast.owner).count() == 1


def test_overlap_one_gives_each_annotator_a_different_item(cast, campaign):
    mine = assignment_next(user=cast.owner)
    theirs = assignment_next(user=cast.other)
    assert mine is not None and theirs is not None
    assert mine.item_id != theirs.item_id
    assert slots(mine.item_id) == (0, 0)


def test_submit_then_accept_keeps_slot_and_counts_done(cast, campaign):
    a = assignment_next(user=cast.owner)
    assert a is not None
    assignment_submit(assignment=a, active_seconds=75)
    assert slots(a.item_id) == (0, 1)
    with pytest.raises(AssignmentStateError, match="submitted"):
        assignment_submit(assignment=a)
    done = assignment_verdict(assignment=a, reviewer=cast.reviewer, accept=True)
    assert done.status == AssignmentStatus.ACCEPTED and done.active_seconds == 75
    assert slots(a.item_id) == (0, 1)
    # the owner is never offered the item again
    nxt = assignment_next(user=cast.owner)
    assert nxt is not None and nxt.item_id != a.item_id


def test_reject_frees_the_slot_for_another_annotator(cast):
    make_campaign(1, "one")
    a = assignment_next(user=cast.owner)
    assert a is not None
    assert assignment_next(user=cast.other) is None
    assignment_submit(assignment=a)
    with pytest.raises(AssignmentStateError, match="reason"):
        assignment_verdict(assignment=a, reviewer=cast.reviewer, accept=False)
    assignment_verdict(assignment=a, reviewer=cast.reviewer, accept=False, reason="too short")
    assert slots(a.item_id) == (1, 0)
    b = assignment_next(user=cast.other)
    assert b is not None and b.item_id == a.item_id
    assert assignment_next(user=cast.owner) is None  # rejected work is not offered back


def test_reviewer_cannot_judge_own_work(cast, campaign):
    a = assignment_next(user=cast.reviewer)
    assert a is not None
    assignment_submit(assignment=a)
    with pytest.raises(AssignmentStateError, match="own work"):
        assignment_verdict(assignment=a, reviewer=cast.reviewer, accept=True)


def test_skip_frees_the_slot_and_is_not_offered_again(cast):
    make_campaign(1, "one")
    a = assignment_next(user=cast.owner)
    assert a is not None
    assignment_skip(assignment=a)
    assert slots(a.item_id) == (1, 0)
    assert assignment_next(user=cast.owner) is None
    b = assignment_next(user=cast.other)
    assert b is not None and b.item_id == a.item_id


def test_release_hands_the_item_back(cast):
    make_campaign(1, "one")
    a = assignment_next(user=cast.owner)
    assert a is not None
    assignment_release(assignment=a)
    assert slots(a.item_id) == (1, 0)
    assert not Assignment.objects.filter(pk=a.pk).exists()
    again = assignment_next(user=cast.owner)
    assert again is not None and again.item_id == a.item_id


def test_expired_lease_is_reclaimed_and_goes_to_someone_else(cast):
    make_campaign(1, "one")
    a = assignment_next(user=cast.owner)
    assert a is not None
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    # lazily, on the next claim that finds nothing open
    b = assignment_next(user=cast.other)
    assert b is not None and b.item_id == a.item_id
    assert Assignment.objects.get(pk=a.pk).status == AssignmentStatus.EXPIRED
    assert slots(a.item_id) == (0, 0)
    with pytest.raises(AssignmentStateError, match="went to other annotators"):
        assignment_submit(assignment=a)
    with pytest.raises(AssignmentStateError):
        assignment_heartbeat(assignment=a)


def test_expired_lease_with_free_slot_comes_back_to_its_owner(cast):
    make_campaign(2, "two")
    a = assignment_next(user=cast.owner)
    assert a is not None
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert assignments_reclaim_expired() == 1
    assert slots(a.item_id) == (1, 0)
    again = assignment_next(user=cast.owner)
    assert again is not None and again.pk == a.pk and again.status == AssignmentStatus.LEASED
    assert slots(a.item_id) == (0, 0)
    # or a late submit of the reclaimed lease still lands while the slot is free
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert assignments_reclaim_expired() == 1
    done = assignment_submit(assignment=a, active_seconds=10)
    assert done.status == AssignmentStatus.SUBMITTED
    assert slots(a.item_id) == (0, 1)


def test_heartbeat_renews_and_records_seconds(cast, campaign):
    a = assignment_next(user=cast.owner)
    assert a is not None
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now())
    beat = assignment_heartbeat(assignment=a, active_seconds=40)
    assert beat.leased_until is not None and beat.leased_until > timezone.now()
    beat = assignment_heartbeat(assignment=a, active_seconds=30)
    assert beat.active_seconds == 40
    with pytest.raises(AssignmentStateError, match="negative"):
        assignment_heartbeat(assignment=a, active_seconds=-1)


def test_overlap_edit_recomputes_open_slots(cast):
    campaign = make_campaign(2, "ov", overlap=3)
    a = assignment_next(user=cast.owner)
    assert a is not None
    assert slots(a.item_id) == (2, 0)
    campaign_update(campaign=campaign, overlap=1)
    assert slots(a.item_id) == (0, 0)
    campaign_update(campaign=campaign, overlap=2)
    assert slots(a.item_id) == (1, 0)
    assert set(WorkItem.objects.values_list("open_slots", flat=True)) == {1, 2}


def test_priority_and_kind_choose_the_campaign(cast):
    low = make_campaign(1, "low", priority=0)
    high = make_campaign(1, "high", priority=5)
    pts = make_campaign(1, "pts", kind="points", label_prompts=["dog"], priority=9)
    a = assignment_next(user=cast.owner, kind="cap")
    assert a is not None and a.item.campaign_id == high.pk
    b = assignment_next(user=cast.other, campaign=low)
    assert b is not None and b.item.campaign_id == low.pk
    c = assignment_next(user=cast.reviewer)
    assert c is not None and c.item.campaign_id == pts.pk


def test_breadth_first_finishes_started_items_first(cast):
    campaign = make_campaign(3, "bf", overlap=2, breadth_first=True)
    first = assignment_next(user=cast.owner, campaign=campaign)
    assert first is not None
    assignment_submit(assignment=first)
    # the item with one annotation already comes before the untouched ones
    second = assignment_next(user=cast.other, campaign=campaign)
    assert second is not None and second.item_id == first.item_id


def test_depth_first_serves_items_in_order(cast):
    campaign = make_campaign(3, "df", overlap=2)
    first = assignment_next(user=cast.owner, campaign=campaign)
    second = assignment_next(user=cast.other, campaign=campaign)
    assert first is not None and second is not None
    assert second.item_id == first.item_id  # overlap 2: the same lowest item, twice
    third = assignment_next(user=cast.reviewer, campaign=campaign)
    assert third is not None and third.item_id > first.item_id


def test_inactive_campaign_gives_no_work_and_keeps_its_leases(cast):
    campaign = make_campaign(2, "off")
    a = assignment_next(user=cast.owner)
    assert a is not None
    campaign_update(campaign=campaign, active=False)
    assert assignment_next(user=cast.other) is None
    assert assignment_next(user=cast.other, campaign=campaign) is None
    # the lease already held can still be submitted: work is never lost
    assert assignment_submit(assignment=a).status == AssignmentStatus.SUBMITTED


@pytest.mark.slow  # bulk-loads items to plan the claim: 33 s on 2 loaded cores
def test_claim_reads_the_partial_index_not_the_table(cast):
    from django.db import connection

    from annotator_app.work.claiming import CLAIM_BREADTH_FIRST, CLAIM_DEPTH_FIRST

    campaign = make_campaign(20_000, "plan")
    with connection.cursor() as cur:
        # Half the items finished, each by one accepted assignment.
        cur.execute(
            """
            WITH done AS (
                UPDATE work_workitem SET open_slots = 0, done_count = 1
                WHERE id IN (SELECT id FROM work_workitem ORDER BY id LIMIT 10000)
                RETURNING id
            )
            INSERT INTO work_assignment (item_id, annotator_id, status, started_at,
                                         active_seconds, review_reason)
            SELECT id, %s, 'accepted', now(), 60, '' FROM done
            """,
            [cast.other.pk],
        )
    now = timezone.now()
    params = {"c": campaign.pk, "u": cast.owner.pk, "now": now, "until": now, "after": 0, "lane": 0}
    with connection.cursor() as cur:
        cur.execute("ANALYZE work_workitem, work_assignment")
        for sql, index in ((CLAIM_DEPTH_FIRST, "workitem_open"),
                           (CLAIM_BREADTH_FIRST, "workitem_open_breadth")):  # fmt: skip
            cur.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cur.fetchall())
            assert f"Index Scan using {index} on work_workitem" in plan, plan
            assert "Seq Scan" not in plan, plan
            assert "Index Cond: (item_id = w.id)" in plan, plan  # a per-item probe
