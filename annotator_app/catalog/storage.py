"""The S3 storage the platform writes media to, refusing path-like trick keys.

django-storages normalises a name such as 'images/../x' to 'x' and stores 'a//b' as
given; neither is a key this platform ever makes, so every way in (save, open, exists,
delete, size, url) refuses both with SuspiciousFileOperation before any request
reaches the bucket.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import SuspiciousFileOperation
from storages.backends.s3 import S3Storage

from annotator_app.catalog.sources import s3_key_problem


def _checked(name: str) -> str:
    problem = s3_key_problem(str(name))
    if problem is not None:
        raise SuspiciousFileOperation(f"refused: {problem}")
    return name


class SafeKeyS3Storage(S3Storage):
    def save(self, name: Any, content: Any, max_length: int | None = None) -> str:
        # Checked before get_available_name(), which normalises 'a//b' to 'a/b'.
        return str(super().save(_checked(name) if name else name, content, max_length))

    def _save(self, name: str, content: Any) -> Any:
        return super()._save(_checked(name), content)

    def _open(self, name: str, mode: str = "rb") -> Any:
        return super()._open(_checked(name), mode)

    def exists(self, name: str) -> bool:
        return bool(super().exists(_checked(name)))

    def delete(self, name: str) -> None:
        super().delete(_checked(name))

    def size(self, name: str) -> int:
        return int(super().size(_checked(name)))

    def url(
        self, name: str, parameters: Any = None, expire: Any = None, http_method: Any = None
    ) -> str:
        return str(super().url(_checked(name), parameters, expire, http_method))
