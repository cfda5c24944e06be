"""S3 on moto's server: importing from s3://bucket/prefix, and storing to S3 with the
media view answering by a short-lived signed redirect."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client

from annotator_app.catalog.models import Image
from annotator_app.catalog.services import ImportStatus, image_import_bytes, images_import
from tests.catalog.conftest import make_image, stored_files

pytestmark = pytest.mark.django_db


def test_import_from_s3_prefix(s3, media_root: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.IMAGE_MAX_BYTES = 50_000
    s3.create_bucket(Bucket="source-images")
    s3.put_object(Bucket="source-images", Key="batch1/a.png", Body=make_image("PNG", seed=11))
    s3.put_object(Bucket="source-images", Key="batch1/sub/b.jpg", Body=make_image("JPEG", seed=12))
    s3.put_object(Bucket="source-images", Key="batch1/sub/", Body=b"")
    s3.put_object(Bucket="source-images", Key="batch1/readme.html", Body=b"<html>hi</html>")
    s3.put_object(Bucket="source-images", Key="batch1/huge.png", Body=b"\x89PNG" + b"\0" * 60_000)
    s3.put_object(Bucket="source-images", Key="other/c.png", Body=make_image("PNG", seed=13))
    summary = images_import(sources=["s3://source-images/batch1/"], topics=["from-s3"])
    assert summary.counts == {"imported": 2, "duplicate": 0, "rejected": 2}
    reasons = {o.source: o.reason for o in summary.rejected}
    assert "HTML" in reasons["s3://source-images/batch1/readme.html"]
    assert "file too large" in reasons["s3://source-images/batch1/huge.png"]
    assert Image.objects.filter(source_url="s3://source-images/batch1/sub/b.jpg").exists()
    assert len(stored_files(media_root)) == 2
    missing = images_import(sources=["s3://no-such-bucket/x"])
    assert (
        missing.nothing_read and "cannot list s3://no-such-bucket/x" in missing.rejected[0].reason
    )


@pytest.fixture
def s3_storage(s3, settings, moto_endpoint: str) -> str:  # type: ignore[no-untyped-def]
    bucket = f"media-{uuid.uuid4().hex[:12]}"  # the moto server lives for the session
    s3.create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "annotator_app.catalog.storage.SafeKeyS3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "region_name": "us-east-1",
                "file_overwrite": False,
                "querystring_auth": True,
                "querystring_expire": 300,
                "default_acl": None,
            },
        },
    }
    return bucket


def test_store_to_s3_and_serve_by_signed_redirect(
    s3, s3_storage: str, cast, media_root: Path
) -> None:  # type: ignore[no-untyped-def]
    data = make_image("PNG", seed=21)
    outcome = image_import_bytes(data=data, source_url="upload")
    assert outcome.status == ImportStatus.IMPORTED and outcome.image is not None
    key = outcome.image.storage_key
    assert s3.get_object(Bucket=s3_storage, Key=key)["Body"].read() == data
    assert stored_files(media_root) == []  # nothing went to the local disk
    assert image_import_bytes(data=data).status == ImportStatus.DUPLICATE
    assert s3.list_objects_v2(Bucket=s3_storage)["KeyCount"] == 1

    anonymous = Client().get(f"/media/{key}")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    client = Client()
    client.force_login(cast.other)
    response = client.get(f"/media/{key}")
    assert response.status_code == 302
    signed = response["Location"]
    query = parse_qs(urlsplit(signed).query)
    assert signed.startswith(s3.meta.endpoint_url)
    # Signature v2 or v4, whichever botocore picks: signed, and valid for 300 s only.
    assert "Signature" in query or "X-Amz-Signature" in query
    if "Expires" in query:
        assert 0 < int(query["Expires"][0]) - time.time() <= 301
    else:
        assert query["X-Amz-Expires"] == ["300"]
    assert response["Cache-Control"] == "private, no-store"
    fetched = requests.get(signed, timeout=10)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["Content-Type"] == "image/png"
    unsigned = requests.get(signed.split("?", 1)[0], timeout=10)
    assert unsigned.status_code == 403 or unsigned.content != data


def test_rejected_bytes_write_nothing_to_s3(s3, s3_storage: str) -> None:  # type: ignore[no-untyped-def]
    outcome = image_import_bytes(data=b"<svg><script>alert(1)</script></svg>")
    assert outcome.status == ImportStatus.REJECTED
    assert s3.list_objects_v2(Bucket=s3_storage)["KeyCount"] == 0 and Image.objects.count() == 0


@pytest.mark.parametrize(
    "key",
    ["batch1/../secret.png", "batch1//a.png", "/batch1/a.png", "batch1/./a.png", "batch1/a.png/"],
)
def test_trick_keys_are_refused_by_the_storage_and_nothing_written(
    s3, s3_storage: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    from django.core.exceptions import SuspiciousFileOperation
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    s3.put_object(Bucket=s3_storage, Key="secret.png", Body=b"not for you")
    for attempt in (
        lambda: default_storage.save(key, ContentFile(make_image("PNG"))),
        lambda: default_storage.open(key, "rb"),
        lambda: default_storage.exists(key),
        lambda: default_storage.delete(key),
        lambda: default_storage.url(key),
    ):
        with pytest.raises(SuspiciousFileOperation):
            attempt()
    listed = s3.list_objects_v2(Bucket=s3_storage)
    assert [o["Key"] for o in listed["Contents"]] == ["secret.png"]


def test_trick_keys_in_an_import_source_are_refused(s3, media_root: Path) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket="tricky")
    good = make_image("PNG", seed=31)
    for key in ("in/a.png", "in//b.png", "in/../c.png", "in/./d.png"):
        s3.put_object(Bucket="tricky", Key=key, Body=make_image("PNG", seed=len(key)))
    s3.put_object(Bucket="tricky", Key="in/ok.png", Body=good)
    summary = images_import(sources=["s3://tricky/in/"])
    reasons = {o.source: o.reason for o in summary.rejected}
    assert summary.counts["imported"] == 2  # in/a.png and in/ok.png
    assert "empty segment" in reasons["s3://tricky/in//b.png"]
    for prefix in ("s3://tricky/in/../", "s3://tricky//in/", "s3://tricky/in/./"):
        refused = images_import(sources=[prefix])
        assert refused.nothing_read and "refused" in refused.rejected[0].reason, prefix
    assert Image.objects.count() == 2 and len(stored_files(media_root)) == 2
