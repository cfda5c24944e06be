"""Recordings on S3 (moto's server): stored before the answer, served by a signed
redirect to the owner only, and nothing left in the bucket when an upload is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import Client

from annotator_app.captions.models import Recording
from tests.captions.audio_fixtures import speech_webm
from tests.captions.capture_helpers import good_audio, lease, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(settings, monkeypatch, moto_url: str) -> tuple[Any, str]:  # type: ignore[no-untyped-def]
    """An empty bucket that default storage writes to, and a boto3 client to look inside."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    name = f"audio-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    settings.AWS_STORAGE_BUCKET_NAME = name
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "annotator_app.catalog.storage.SafeKeyS3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": moto_url,
                "region_name": "us-east-1",
                "file_overwrite": False,
                "querystring_auth": True,
                "querystring_expire": 300,
                "default_acl": None,
            },
        },
    }
    return client, name


def _keys(bucket: tuple[Any, str]) -> list[str]:
    client, name = bucket
    return [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]


def test_a_recording_lands_in_the_bucket_and_plays_for_its_owner_only(
    cast, api_as, capture_campaign, bucket
) -> None:
    assignment = lease(cast.owner)
    data = good_audio()
    assert upload(api_as(cast.owner), assignment.pk, data).status_code == 201
    recording = Recording.objects.get()
    # The upload and its seekable copy (S3 serves byte ranges itself).
    assert sorted(_keys(bucket)) == sorted([recording.storage_key, recording.playback_key])

    viewer = Client()
    viewer.force_login(cast.owner)
    redirect = viewer.get(f"/media/{recording.storage_key}")
    assert redirect.status_code == 302
    fetched = requests.get(redirect["Location"], timeout=10)
    assert fetched.content == data and fetched.headers["Content-Type"] == "audio/webm"
    copy = requests.get(viewer.get(f"/media/{recording.playback_key}")["Location"], timeout=10)
    assert copy.status_code == 200 and copy.content.startswith(b"\x1a\x45\xdf\xa3")
    viewer.force_login(cast.other)
    assert viewer.get(f"/media/{recording.storage_key}").status_code == 404
    assert viewer.get(f"/media/{recording.playback_key}").status_code == 404


def test_refused_and_failed_uploads_leave_the_bucket_empty(
    cast, api_as, capture_campaign, bucket, monkeypatch
) -> None:
    assignment = lease(cast.owner)
    assert upload(api_as(cast.owner), assignment.pk, speech_webm(2)).status_code == 400

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database connection was lost")

    monkeypatch.setattr("annotator_app.captions.services.assignment_submit", broken)
    with pytest.raises(RuntimeError):
        upload(api_as(cast.owner), assignment.pk, good_audio())
    assert _keys(bucket) == [] and Recording.objects.count() == 0
