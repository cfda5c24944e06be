"""The exports API and page: only admins start, watch or download; a real Celery worker
runs the job; bad input is a 400 that names the field."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotator_app.exports import services
from annotator_app.exports.models import Export, ExportStatus
from tests.captions.pipeline_helpers import wait_until, worker
from tests.exports import helpers

API = "/api/v1/exports/"


@pytest.fixture
def finished(cast, tmp_path) -> Export:  # type: ignore[no-untyped-def]
    camp = helpers.campaign("points")
    helpers.points_image(camp, helpers.stored_image(), [("dog", [(50.0, 50.0)])])
    export = services.export_create(dataset="points", user=cast.admin)
    return services.export_run(export_id=export.pk)


@pytest.mark.django_db
def test_annotators_and_reviewers_cannot_export_list_or_download(cast, api_as, finished) -> None:  # type: ignore[no-untyped-def]
    file_url = f"{API}{finished.pk}/files/manifest.json"
    for user in (cast.owner, cast.reviewer):
        client = api_as(user)
        assert client.get(API).status_code == 403
        assert client.post(API, {"dataset": "points"}, format="json").status_code == 403
        assert client.get(f"{API}{finished.pk}/").status_code == 403
        assert client.get(file_url).status_code == 403
    assert api_as(None).get(file_url).status_code in (401, 403)
    assert Export.objects.count() == 1
    for user, expected in ((cast.owner, 403), (cast.reviewer, 403)):
        page = Client()
        page.force_login(user)
        assert page.get("/exports/").status_code == expected
        assert page.post("/exports/", {"dataset": "points"}).status_code == expected
    assert Export.objects.count() == 1


@pytest.mark.django_db
def test_admin_downloads_only_files_the_manifest_lists(cast, api_as, finished) -> None:  # type: ignore[no-untyped-def]
    client = api_as(cast.admin)
    detail = client.get(f"{API}{finished.pk}/").json()
    assert detail["status"] == "done" and detail["rows_done"] == 1
    assert "manifest.json" in detail["files"]
    shard = detail["files"][-1]
    response = client.get(f"{API}{finished.pk}/files/{shard}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert b"".join(response.streaming_content).startswith(b"PAR1")
    manifest = json.loads(
        b"".join(client.get(f"{API}{finished.pk}/files/manifest.json").streaming_content)
    )
    assert manifest["rows"] == 1
    for name in ("../../settings.py", "data/../manifest.json", "/etc/passwd", "images/x.png"):
        assert client.get(f"{API}{finished.pk}/files/{name}").status_code == 404
    assert client.get(f"{API}00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get(f"{API}not-a-uuid/").status_code == 404


@pytest.mark.django_db
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    client = api_as(cast.admin)
    for body, field in [
        ({"dataset": "everything"}, "dataset"),
        ({"dataset": "points", "format": "xml"}, "format"),
        ({"dataset": "points", "since": "last tuesday"}, "since"),
        ({"dataset": "points", "campaign": "<script>"}, "campaign"),
        ({"dataset": "cap", "status": "rejected"}, "status"),
    ]:
        response = client.post(API, body, format="json")
        assert response.status_code == 400, body
        assert field in json.dumps(response.json()), response.json()
    assert not Export.objects.exists()
    page = Client()
    page.force_login(cast.admin)
    refused = page.post("/exports/", {"dataset": "points", "since": "soon"})
    assert refused.status_code == 400 and b"since" in refused.content
    assert not Export.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_api_export_runs_as_a_celery_job_on_the_default_queue(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    camp = helpers.campaign("cap")
    helpers.cap_image(camp, helpers.stored_image(), ["um a red square"], "A red square.")
    client = api_as(cast.admin)
    with worker(queues="default"):
        created = client.post(
            API, {"dataset": "cap", "format": "jsonl", "full": True}, format="json"
        )
        assert created.status_code == 201, created.content
        export_id = created.json()["id"]
        wait_until(
            lambda: (
                Export.objects.get(pk=export_id).status in (ExportStatus.DONE, ExportStatus.FAILED)
            ),
            timeout=120,
            what="the export job",
        )
    export = Export.objects.get(pk=export_id)
    assert export.status == ExportStatus.DONE, export.error
    assert export.created_by == cast.admin and export.rows_done == 1
    detail = client.get(f"{API}{export_id}/").json()
    assert detail["manifest"]["variant"] == "full" and detail["manifest"]["format"] == "jsonl"
    listed = client.get(API).json()
    assert [e["id"] for e in listed] == [export_id]
