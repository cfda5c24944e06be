"""The catalog API and media serving, asked by every member of the cast and attackers."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from annotator_app.catalog.models import Image, Topic
from annotator_app.catalog.services import image_import_bytes
from tests.catalog.conftest import HTML_PAGE, ScriptedServer, make_image, stored_files

pytestmark = pytest.mark.django_db


def _client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _image() -> Image:
    outcome = image_import_bytes(data=make_image("PNG", seed=3), source_url="seed")
    assert outcome.image is not None
    return outcome.image


def test_only_admins_may_import(
    cast, api_as, allow_server: ScriptedServer, media_root: Path
) -> None:  # type: ignore[no-untyped-def]
    url = allow_server.serve_bytes("/a.png", make_image("PNG"))
    body = {"sources": [url]}
    assert api_as(None).post("/api/v1/catalog/imports/", body, format="json").status_code in (
        401,
        403,
    )
    for user in (cast.owner, cast.reviewer):
        assert api_as(user).post("/api/v1/catalog/imports/", body, format="json").status_code == 403
    assert Image.objects.count() == 0 and allow_server.seen_hosts == []
    Topic.objects.create(name="Clocks", slug="clocks")
    response = api_as(cast.admin).post(
        "/api/v1/catalog/imports/", {**body, "topics": ["clocks"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["counts"] == {"imported": 1, "duplicate": 0, "rejected": 0}
    image = Image.objects.get()
    assert response.json()["items"][0]["image_id"] == image.pk
    assert list(image.topics.values_list("slug", flat=True)) == ["clocks"]
    assert image.created_by == cast.admin


def test_import_api_refuses_bulk_local_paths_and_unknown_topics(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    admin = api_as(cast.admin)
    many = {"sources": [f"https://example.com/{i}.png" for i in range(11)]}
    response = admin.post("/api/v1/catalog/imports/", many, format="json")
    assert response.status_code == 400 and "at most 10 sources" in str(response.json())
    for source in ["/etc", "file:///etc/passwd", "ftp://example.com/a.png", "urls.txt"]:
        response = admin.post("/api/v1/catalog/imports/", {"sources": [source]}, format="json")
        assert response.status_code == 400, source
    response = admin.post(
        "/api/v1/catalog/imports/",
        {"sources": ["https://example.com/a.png"], "topics": ["nope"]},
        format="json",
    )
    assert response.status_code == 400 and "unknown topics: nope" in str(response.json())


def test_import_api_reports_refused_urls(cast, api_as, http_server: ScriptedServer) -> None:  # type: ignore[no-untyped-def]
    url = http_server.serve_bytes("/a.png", make_image("PNG"))
    response = api_as(cast.admin).post(
        "/api/v1/catalog/imports/", {"sources": [url]}, format="json"
    )
    assert response.status_code == 200
    item = response.json()["items"][0]
    assert item["status"] == "rejected" and "loopback" in item["reason"]
    assert Image.objects.count() == 0


def test_images_are_listed_for_every_logged_in_user(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    image = _image()
    topic = Topic.objects.create(name="Charts", slug="charts")
    image.topics.add(topic)
    assert api_as(None).get("/api/v1/catalog/images/").status_code in (401, 403)
    for user in (cast.owner, cast.other, cast.reviewer, cast.admin):
        listing = api_as(user).get("/api/v1/catalog/images/?topic=charts")
        assert listing.status_code == 200
        assert [row["id"] for row in listing.json()["results"]] == [image.pk]
    detail = api_as(cast.other).get(f"/api/v1/catalog/images/{image.pk}/").json()
    assert detail["url"] == f"http://testserver/media/{image.storage_key}"
    assert (detail["mime"], detail["topics"]) == ("image/png", ["charts"])
    assert api_as(cast.owner).get("/api/v1/catalog/images/?topic=none").json()["results"] == []
    assert api_as(cast.owner).get("/api/v1/catalog/images/999999/").status_code == 404


def test_only_admins_create_topics(cast, api_as) -> None:  # type: ignore[no-untyped-def]
    for user in (cast.owner, cast.reviewer):
        assert api_as(user).post("/api/v1/catalog/topics/", {"name": "Cats"}).status_code == 403
    created = api_as(cast.admin).post("/api/v1/catalog/topics/", {"name": "Street signs"})
    assert created.status_code == 201 and created.json()["slug"] == "street-signs"
    again = api_as(cast.admin).post("/api/v1/catalog/topics/", {"name": "street signs"})
    assert again.status_code == 400 and "already exists" in str(again.json())
    listing = api_as(cast.owner).get("/api/v1/catalog/topics/")
    assert [t["slug"] for t in listing.json()] == ["street-signs"]


def test_media_requires_login_and_sets_fixed_headers(cast) -> None:  # type: ignore[no-untyped-def]
    image = _image()
    url = f"/media/{image.storage_key}"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    response = _client_for(cast.other).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == make_image("PNG", seed=3)  # type: ignore[attr-defined]
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["Content-Disposition"].startswith("inline;")


def test_content_type_comes_from_the_row_not_the_name(cast, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    # A stored file whose name says .html and whose bytes are HTML: the row says PNG,
    # so it goes out as image/png; a tampered row saying text/html is neutralised.
    default_storage.save("images/zz/zz/evil.html", ContentFile(HTML_PAGE))
    row = Image.objects.create(
        sha256="f" * 64, width=1, height=1, format="png", mime="image/png", size_bytes=10,
        storage_key="images/zz/zz/evil.html",
    )  # fmt: skip
    client = _client_for(cast.owner)
    assert client.get("/media/images/zz/zz/evil.html")["Content-Type"] == "image/png"
    Image.objects.filter(pk=row.pk).update(mime="text/html")
    tampered = client.get("/media/images/zz/zz/evil.html")
    assert tampered["Content-Type"] == "application/octet-stream"
    assert tampered["X-Content-Type-Options"] == "nosniff"


def test_media_refuses_traversal_unknown_files_and_unregistered_prefixes(
    cast,
    media_root: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    image = _image()
    (tmp_path / "secret.txt").write_text("secret")
    default_storage.save("images/no-row.png", ContentFile(make_image("PNG", seed=8)))
    default_storage.save("exports/dump.json", ContentFile(b"{}"))
    client = _client_for(cast.admin)
    for path in [
        "/media/images/../secret.txt",
        "/media/images/%2e%2e/%2e%2e/secret.txt",
        "/media/images/..%2f..%2fsecret.txt",
        "/media/images/ab/..\\..\\secret.txt",
        "/media//etc/passwd",
        f"/media/{image.storage_key}/..",
        "/media/images/no-row.png",
        "/media/exports/dump.json",
        "/media/",
    ]:
        assert client.get(path).status_code == 404, path
    assert len(stored_files(media_root)) == 3


def test_admin_lists_searches_filters_and_previews_without_scripts(cast) -> None:  # type: ignore[no-untyped-def]
    image = _image()
    client = _client_for(cast.admin)
    found = client.get(f"/admin/catalog/image/?q={image.sha256[:20]}&format__exact=png")
    assert found.status_code == 200 and image.sha256[:16].encode() in found.content
    assert image.sha256[:16].encode() not in client.get("/admin/catalog/image/?q=seed-nope").content
    page = client.get(f"/admin/catalog/image/{image.pk}/change/")
    assert page.status_code == 200
    assert f'<img src="/media/{image.storage_key}"'.encode() in page.content
    assert b"<script>" not in page.content and b"onerror" not in page.content
