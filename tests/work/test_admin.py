"""Django admin: saving a campaign syncs its items; invalid settings are refused."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize("kind", ["cap", "points", "ama"])
def test_every_campaign_kind_edits_label_prompts_as_a_list(cast, kind):
    from tests.work.conftest import make_campaign

    prompts = ["cup", "giraffe"] if kind == "points" else []
    campaign = make_campaign(1, f"kind-{kind}", kind=kind, label_prompts=prompts)
    client = Client()
    client.force_login(cast.admin)
    page = client.get(f"/admin/work/campaign/{campaign.pk}/change/").content.decode()
    rows = len(prompts) + 2  # the prompts, then blank rows to add more
    assert page.count('name="label_prompts"') == rows
    assert f'aria-label="Label prompt {rows}"' in page and "Add a prompt" in page
    assert not re.search(r'<textarea[^>]*name="label_prompts"', page)
    for prompt in prompts:
        assert f'value="{prompt}"' in page


def _task_page_counts():
    from annotator_app.work.models import Assignment, WorkItem

    return Assignment.objects.count(), sorted(WorkItem.objects.values_list("open_slots", flat=True))


@pytest.mark.parametrize(
    ("kind", "url", "words"),
    [
        ("cap", "/captions/capture/", "Annotators speak for"),
        ("points", "/points/", "Collection: Counting"),
        ("ama", "/ama/", "PixMo-AMA (ask me anything)"),
    ],
)
def test_an_admin_opening_a_task_page_sees_a_preview_and_claims_nothing(cast, kind, url, words):
    from tests.work.conftest import make_campaign

    extra = {"label_prompts": ["cup"]} if kind == "points" else {}
    first = make_campaign(2, f"prev-{kind}", kind=kind, priority=5, **extra)
    quiet = make_campaign(1, f"quiet-{kind}", kind=kind, active=False, **extra)
    before = _task_page_counts()
    client = Client()
    client.force_login(cast.admin)
    page = client.get(url).content.decode()
    assert "Preview for admins: nothing was claimed" in page and first.name in page
    assert words in page
    first_image = WorkItem.objects.filter(campaign=first).order_by("id").first().image
    assert f"/media/images/{first_image.sha256[:2]}/" in page
    # An inactive campaign can be previewed by choosing it.
    chosen = client.get(url, {"campaign": quiet.pk}).content.decode()
    assert f"<h2>{quiet.name}</h2>" in chosen
    assert _task_page_counts() == before
    # Asked to work on it, the admin claims an item like anyone.
    working = client.get(url, {"annotate": "1"})
    assert working.status_code == 200 and "Preview for admins" not in working.content.decode()
    assert _task_page_counts()[0] == before[0] + 1


def test_annotators_still_claim_by_opening_the_page(cast):
    from tests.work.conftest import make_campaign

    make_campaign(1, "claim", kind="cap")
    client = Client()
    client.force_login(cast.owner)
    page = client.get("/captions/capture/").content.decode()
    assert "Preview for admins" not in page and "Start recording" in page
    assert _task_page_counts()[0] == 1


def test_work_item_list_shows_each_image_as_a_thumbnail(cast):
    from tests.work.conftest import make_campaign

    campaign = make_campaign(3, "thumbs")
    client = Client()
    client.force_login(cast.admin)
    page = client.get("/admin/work/workitem/").content.decode()
    for item in WorkItem.objects.filter(campaign=campaign):
        assert f'src="/media/thumbnails/{item.image_id}.jpg"' in page
    assert page.count('class="admin-thumbnail"') == 3
