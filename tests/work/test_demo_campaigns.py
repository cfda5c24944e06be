"""seed_demo adds one campaign of each kind over the demo images, once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from annotator_app.catalog.models import Image
from annotator_app.work.models import Campaign, WorkItem

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_each_kind_of_campaign_once() -> None:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo campaigns created" in out.getvalue()
    campaigns = {c.kind: c for c in Campaign.objects.all()}
    assert set(campaigns) == {"cap", "points", "ama"}
    cap = campaigns["cap"]
    assert (cap.overlap, cap.min_seconds) == (1, 60)
    assert campaigns["points"].label_prompts
    images = Image.objects.count()
    for campaign in campaigns.values():
        assert WorkItem.objects.filter(campaign=campaign).count() == images

    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert "Demo campaigns created" not in again.getvalue()
    assert Campaign.objects.count() == 3
    assert WorkItem.objects.count() == 3 * images
