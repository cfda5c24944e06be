"""Importing from the browser: the admin form, the Celery job, its progress, its reasons."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotator_app.catalog.import_jobs import import_job_run
from annotator_app.catalog.models import Image, ImportJob, ImportJobStatus, Topic
from tests.captions.pipeline_helpers import worker
from tests.catalog.conftest import HTML_PAGE, ScriptedServer, animation, make_image, stored_files

FORM = "/admin/catalog/image/import/"


def admin_client(cast: Any) -> Client:
    client = Client()
    client.force_login(cast.admin)
    return client


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")  # the type is a lie


def wait_finished(job_id: int, timeout: float = 120) -> ImportJob:
    deadline = time.monotonic() + timeout
    while True:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in (ImportJobStatus.DONE, ImportJobStatus.FAILED):
            return job
        assert time.monotonic() < deadline, f"import {job_id} still {job.status}"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_files_and_urls_are_imported_by_a_worker_with_reasons(
    cast, media_root: Path, allow_server: ScriptedServer, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.IMAGE_MAX_BYTES = 200_000
    Topic.objects.create(name="street", slug="street")
    png, jpeg = make_image("PNG", seed=41), make_image("JPEG", seed=42)
    good_url = allow_server.serve_bytes("/a.jpg", jpeg)
    files = [
        upload("one.png", png),
        upload("again.png", png),  # same bytes: a duplicate
        upload("page.png", HTML_PAGE),
        upload("frames.gif", animation("GIF", frames=150)),
        upload("huge.png", b"\x89PNG" + b"\0" * 250_000),
    ]
    urls = f"{good_url}\n\n# a comment\nhttp://127.0.0.1:9/private.png\n"
    with worker("default"):
        response = admin_client(cast).post(
            FORM, {"image_files": files, "urls": urls, "topics": [Topic.objects.get().pk]}
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        job = ImportJob.objects.get()
        assert response["Location"] == f"{FORM}{job.pk}/"
        job = wait_finished(job.pk)
    assert job.status == ImportJobStatus.DONE and job.total == 7 and job.done == 7
    assert job.counts == {"imported": 2, "duplicate": 1, "rejected": 4}
    by_source = {o["source"]: o for o in job.outcomes}
    assert by_source[good_url]["status"] == "imported"
    assert "loopback" in by_source["http://127.0.0.1:9/private.png"]["reason"]
    assert "HTML" in by_source["upload:page.png"]["reason"]
    assert "more than 100 frames" in by_source["upload:frames.gif"]["reason"]
    assert "file too large" in by_source["upload:huge.png"]["reason"]
    assert by_source["upload:again.png"]["status"] == "duplicate"
    assert Image.objects.count() == 2 and Image.objects.filter(topics__slug="street").count() == 2
    assert Image.objects.get(source_url=good_url).created_by == cast.admin
    # The uploads were kept only while the job ran: what stays is the two images.
    assert [f for f in stored_files(media_root) if not f.startswith("images/")] == []
    assert len(stored_files(media_root)) == 2
    # The progress page and its JSON show the same.
    state = admin_client(cast).get(f"{FORM}{job.pk}/status/").json()
    assert (state["done"], state["total"], state["finished"]) == (7, 7, True)
    page = admin_client(cast).get(f"{FORM}{job.pk}/").content.decode()
    assert "more than 100 frames" in page and 'value="7"' in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"urls": ""}, "choose at least one image file or paste at least one URL"),
        ({"urls": "file:///etc/passwd"}, "only http(s):// URLs and s3:// URIs"),
        ({"urls": "/var/lib/secret.png"}, "only http(s):// URLs and s3:// URIs"),
        ({"urls": "\n".join(f"https://example.org/{n}.png" for n in range(101))}, "at most 100"),
    ],
    ids=["empty", "file-url", "local-path", "too-many"],
)
def test_bad_forms_are_refused_with_a_reason_and_nothing_written(
    cast, media_root: Path, data: dict[str, str], words: str
) -> None:  # type: ignore[no-untyped-def]
    response = admin_client(cast).post(
        FORM, {**data, "image_files": [upload("ok.png", make_image())]} if data["urls"] else data
    )
    assert response.status_code == 400 and words in response.content.decode()
    assert not ImportJob.objects.exists() and stored_files(media_root) == []


@pytest.mark.django_db
def test_upload_names_are_shown_as_text_never_markup(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    evil = '<img src=x onerror="alert(1)">.png'
    response = admin_client(cast).post(FORM, {"image_files": [upload(evil, HTML_PAGE)]})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.uploads[0]["name"] == evil
    import_job_run(job_id=job.pk)
    page = admin_client(cast).get(f"{FORM}{job.pk}/").content.decode()
    assert "upload:&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.png" in page
    assert "<img src=x" not in page
    # Folders in a name are dropped: the name is for recognising the file, not a path.
    admin_client(cast).post(FORM, {"image_files": [upload("../../etc/passwd.png", make_image())]})
    assert ImportJob.objects.latest("id").uploads[0]["name"] == "passwd.png"


@pytest.mark.django_db
def test_only_admins_import_or_watch_imports(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    job = ImportJob.objects.create(created_by=cast.admin, sources=["https://example.org/x.png"])
    for user in (cast.owner, cast.reviewer):
        client = Client()
        client.force_login(user)
        for url in (FORM, f"{FORM}{job.pk}/", f"{FORM}{job.pk}/status/"):
            assert client.get(url).status_code in (302, 403), (user, url)
        refused = client.post(FORM, {"image_files": [upload("x.png", make_image())]})
        assert refused.status_code in (302, 403)
    assert ImportJob.objects.count() == 1 and stored_files(media_root) == []
    assert Client().get(f"{FORM}{job.pk}/status/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_a_redelivered_job_resumes_after_its_last_outcome(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    uploads = []
    for n in range(3):
        key = default_storage.save(f"imports/t/{n}", ContentFile(make_image(seed=50 + n)))
        uploads.append({"key": key, "name": f"{n}.png", "size": 100})
    done = {"source": "upload:0.png", "status": "imported", "reason": "", "image_id": None}
    # A worker died after the first item: the job is running with one outcome.
    job = ImportJob.objects.create(
        created_by=cast.admin, uploads=uploads, status=ImportJobStatus.RUNNING, outcomes=[done]
    )
    finished = import_job_run(job_id=job.pk)
    assert finished is not None and finished.status == ImportJobStatus.DONE
    assert [o["source"] for o in finished.outcomes] == [
        "upload:0.png",
        "upload:1.png",
        "upload:2.png",
    ]
    assert Image.objects.count() == 2  # the first item is not imported twice
    assert import_job_run(job_id=job.pk) is None  # a finished job never runs again
    assert stored_files(media_root) == sorted(i.storage_key for i in Image.objects.all())


@pytest.mark.django_db
def test_the_image_list_has_an_import_button_and_thumbnails(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    from annotator_app.catalog.services import image_import_bytes

    images = [
        image_import_bytes(data=make_image("JPEG", size=(900, 600), seed=s)).image for s in (1, 2)
    ]
    page = admin_client(cast).get("/admin/catalog/image/").content.decode()
    assert f'href="{FORM}"' in page
    for image in images:
        assert image is not None
        assert f'src="/media/thumbnails/{image.pk}.jpg"' in page
        assert 'width="64" height="43"' in page


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_resends_a_job_whose_message_was_lost(cast, media_root: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from annotator_app.catalog.tasks import import_jobs_sweep

    key = default_storage.save("imports/lost/0", ContentFile(make_image(seed=70)))
    # Created without its message (as after a broker restart), ten minutes ago.
    lost = ImportJob.objects.create(
        created_by=cast.admin, uploads=[{"key": key, "name": "a.png", "size": 100}]
    )
    fresh = ImportJob.objects.create(created_by=cast.admin, sources=["https://example.org/x"])
    ImportJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    settings.IMPORT_JOB_STUCK_SECONDS = 300
    assert (
        settings.CELERY_BEAT_SCHEDULE["catalog-import-jobs-sweep"]["task"] == import_jobs_sweep.name
    )
    with worker("default"):
        import_jobs_sweep.delay()
        job = wait_finished(lost.pk)
    assert job.status == ImportJobStatus.DONE and job.counts["imported"] == 1
    assert ImportJob.objects.get(pk=fresh.pk).status == ImportJobStatus.QUEUED


@pytest.mark.django_db
def test_the_api_starts_an_import_job_and_reports_its_progress(
    cast, api_as, media_root: Path
) -> None:  # type: ignore[no-untyped-def]
    Topic.objects.create(name="street", slug="street")
    body = {
        "image_files": [upload("a.png", make_image(seed=80)), upload("b.png", HTML_PAGE)],
        "urls": ["https://example.org/c.png"],
        "topics": ["street"],
    }
    started = api_as(cast.admin).post("/api/v1/catalog/import-jobs/", body, format="multipart")
    assert started.status_code == 202, started.content
    job_id = started.json()["id"]
    assert started.json()["status"] == "queued"
    import_job_run(job_id=job_id)  # what the worker does (the worker test above proves it)
    state = api_as(cast.admin).get(f"/api/v1/catalog/import-jobs/{job_id}/").json()
    assert (state["status"], state["total"], state["done"]) == ("done", 3, 3)
    assert state["counts"]["imported"] == 1 and "HTML" in state["outcomes"][2]["reason"]
    # Refusals: non-admins, bad URLs, unknown topics; nothing written for any.
    before = sorted(stored_files(media_root))
    for user in (cast.owner, cast.reviewer):
        again = {**body, "image_files": [upload("a.png", make_image(seed=81))]}
        response = api_as(user).post("/api/v1/catalog/import-jobs/", again, format="multipart")
        assert response.status_code == 403
        assert api_as(user).get(f"/api/v1/catalog/import-jobs/{job_id}/").status_code == 403
    bad = api_as(cast.admin).post(
        "/api/v1/catalog/import-jobs/",
        {"image_files": [upload("z.png", make_image(seed=82))], "urls": ["file:///etc/passwd"]},
        format="multipart",
    )
    assert bad.status_code == 400 and "only http(s):// URLs" in bad.content.decode()
    unknown = api_as(cast.admin).post(
        "/api/v1/catalog/import-jobs/", {"urls": ["https://x.org/a"], "topics": ["nope"]}
    )
    assert unknown.status_code == 400 and "unknown topics: nope" in unknown.content.decode()
    assert ImportJob.objects.count() == 1 and sorted(stored_files(media_root)) == before
