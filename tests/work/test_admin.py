"""Django admin: saving a campaign syncs its items; invalid settings are refused."""

from __future__ import annotations

import pytest
from django.test import Client

from annotator_app.work.models import Campaign, WorkItem
from tests.work.conftest import make_images

pytestmark = pytest.mark.django_db


def form(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Admin-made",
        "kind": "cap",
        "overlap": 2,
        "min_seconds": 60,
        "max_seconds": 600,
        "collection_method": "counting",
        "guidelines": "",
        "priority": 0,
        "active": "on",
        "lease_seconds": 600,
    }
    data.update(fields)
    return data


def test_admin_creates_a_campaign_and_its_items(cast):
    images = make_images(3, "adm")
    client = Client()
    client.force_login(cast.admin)
    response = client.post("/admin/work/campaign/add/", form(images=[i.pk for i in images[:2]]))
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(name="Admin-made")
    items = WorkItem.objects.filter(campaign=campaign)
    assert sorted(items.values_list("image_id", flat=True)) == sorted(i.pk for i in images[:2])
    assert set(items.values_list("open_slots", flat=True)) == {2}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"kind": "points"}, "at least one label"),
        ({"min_seconds": 900}, "must not exceed max_seconds"),
    ],
)
def test_admin_refuses_invalid_settings(cast, fields, words):
    client = Client()
    client.force_login(cast.admin)
    response = client.post("/admin/work/campaign/add/", form(**fields))
    assert response.status_code == 200 and words in response.content.decode()
    assert not Campaign.objects.exists()


def test_annotators_cannot_open_the_admin(cast):
    client = Client()
    client.force_login(cast.owner)
    assert client.get("/admin/work/campaign/").status_code == 302


def test_label_prompts_are_edited_as_a_list_of_rows(cast):
    client = Client()
    client.force_login(cast.admin)
    page = client.get("/admin/work/campaign/add/").content.decode()
    # One text input per prompt (plus blank rows), not a JSON text area.
    assert page.count('name="label_prompts"') >= 2 and 'aria-label="Label prompt 1"' in page
    assert "<textarea" not in page.split('name="label_prompts"')[0].rsplit("<li", 1)[-1]
    rows = ["  cup ", "", "giraffe  with   spots", ""]
    response = client.post("/admin/work/campaign/add/", form(kind="points", label_prompts=rows))
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(name="Admin-made")
    assert campaign.label_prompts == ["cup", "giraffe with spots"]
    change = client.get(f"/admin/work/campaign/{campaign.pk}/change/").content.decode()
    assert 'value="cup"' in change and 'value="giraffe with spots"' in change


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"kind": "points", "label_prompts": ["Cup", "cup "]}, "listed twice"),
        ({"kind": "points", "label_prompts": ["x" * 201]}, "at most 200 characters"),
        ({"kind": "cap", "label_prompts": ["dog"]}, "only points campaigns"),
        ({"kind": "points", "collection_method": "counting"}, "at least one label"),
    ],
)
def test_label_prompt_rows_are_checked(cast, fields, words):
    client = Client()
    client.force_login(cast.admin)
    response = client.post("/admin/work/campaign/add/", form(**fields))
    assert response.status_code == 200 and words in response.content.decode()
    assert not Campaign.objects.exists()


def test_a_pointing_campaign_needs_no_prompts(cast):
    client = Client()
    client.force_login(cast.admin)
    response = client.post(
        "/admin/work/campaign/add/", form(kind="points", collection_method="pointing")
    )
    assert response.status_code == 302
    assert Campaign.objects.get().label_prompts == []
