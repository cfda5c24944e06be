"""The dashboard and history pages, and the beat task through a real Celery worker."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.test import Client
from django.utils import timezone

from annotator_app.celery import app
from annotator_app.work.models import Assignment, AssignmentStatus, WorkItem
from annotator_app.work.services import assignment_next, assignment_submit, assignment_verdict
from annotator_app.work.tasks import reclaim_expired_leases
from tests.work.conftest import make_campaign


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def assert_csp_clean(html: str) -> None:
    assert " style=" not in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, tag


@pytest.mark.django_db
def test_dashboard_is_for_admins_only(cast):
    make_campaign(2, "dash")
    assert client_for(cast.owner).get("/work/dashboard/").status_code == 403
    assert client_for(cast.reviewer).get("/work/dashboard/").status_code == 403
    anonymous = client_for(None).get("/work/dashboard/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


@pytest.mark.django_db
def test_dashboard_charts_completions(cast):
    campaign = make_campaign(3, "dash")
    for user in (cast.owner, cast.other):
        assignment = assignment_next(user=user)
        assert assignment is not None
        assignment_submit(assignment=assignment, active_seconds=120)
    response = client_for(cast.admin).get(f"/work/dashboard/?campaign={campaign.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert_csp_clean(html)
    assert "<svg" in html and html.count('class="bar"') == 30
    today = timezone.now().date().isoformat()
    assert f"<title>{today}: 2</title>" in html
    assert "2 submissions" in html
    assert "campaign dash" in html and "owner" in html and "other" in html


@pytest.mark.django_db
def test_history_page_shows_own_work_and_reasons(cast):
    make_campaign(2, "hist")
    mine = assignment_next(user=cast.owner)
    assert mine is not None
    assignment_submit(assignment=mine)
    assignment_verdict(assignment=mine, reviewer=cast.reviewer, accept=False, reason="too vague")
    assignment_next(user=cast.other)
    page = client_for(cast.owner).get("/work/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert_csp_clean(html)
    assert "Rejected: too vague" in html and html.count("<tr class=") == 1
    theirs = client_for(cast.other).get("/work/history/").content.decode()
    assert "too vague" not in theirs and theirs.count("<tr class=") == 1
    assert client_for(None).get("/work/history/").status_code == 302


def test_beat_schedule_runs_the_sweep():
    entry = settings.CELERY_BEAT_SCHEDULE["work-reclaim-expired-leases"]
    assert entry["task"] == reclaim_expired_leases.name


@pytest.mark.django_db(transaction=True)
def test_sweep_reclaims_expired_leases_through_a_worker(cast):
    make_campaign(2, "sweep")
    gone = assignment_next(user=cast.owner)
    live = assignment_next(user=cast.other)
    assert gone is not None and live is not None
    Assignment.objects.filter(pk=gone.pk).update(leased_until=timezone.now() - timedelta(minutes=1))
    with start_worker(app, pool="solo", perform_ping_check=False, queues="default"):
        reclaim_expired_leases.delay()
        deadline = time.monotonic() + 60
        while Assignment.objects.get(pk=gone.pk).status != AssignmentStatus.EXPIRED:
            assert time.monotonic() < deadline, "the worker never reclaimed the lease"
            time.sleep(0.1)
    assert WorkItem.objects.get(pk=gone.item_id).open_slots == 1
    assert Assignment.objects.get(pk=live.pk).status == AssignmentStatus.LEASED
    assert WorkItem.objects.get(pk=live.item_id).open_slots == 0


@pytest.mark.django_db
def test_home_links_to_the_work_pages(cast):
    mine = client_for(cast.owner).get("/").content.decode()
    assert 'href="/work/history/"' in mine and "/work/dashboard/" not in mine
    boss = client_for(cast.admin).get("/").content.decode()
    assert 'href="/work/dashboard/"' in boss
