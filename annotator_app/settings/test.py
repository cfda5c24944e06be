"""`make test`: real PostgreSQL and Redis on 127.0.0.1 (or the embedded ones)."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from annotator_app.settings import test_slot

# Before base reads the URLs: this run's own database name and Redis database.
TEST_SLOT = test_slot.claim()

from annotator_app.settings.base import *  # noqa: E402, F403
from annotator_app.settings.base import CONTENT_SECURITY_POLICY  # noqa: E402

STATIC_ROOT = Path(tempfile.mkdtemp(prefix="pixmo-test-static-"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="pixmo-test-media-"))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": "/media/"},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AXES_ENABLED = True
assert CONTENT_SECURITY_POLICY
