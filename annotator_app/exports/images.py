"""The published image columns of a snapshot, from a source's `_image_key`/`_image_sha256`.

Three ways to say where an image is (README "Dataset export"):
- ``base``: EXPORT_IMAGE_BASE_URL + the storage key (a stable public URL: a CDN or a
  public bucket in front of the media storage);
- ``signed``: a signed S3 URL of the media bucket, valid EXPORT_SIGNED_URL_SECONDS
  (at most 7 days, S3's limit): for handing a snapshot to someone soon;
- ``bundled``: the image bytes ship in the snapshot as ``images/<sha256>.<ext>`` and
  `image_url` is that relative path (model_service.data resolves it; nothing to fetch).
  The default when no base URL is set and media is on the local disk, or on request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.core.files.storage import default_storage

IMAGE_MODES = ("base", "signed", "bundled")


def image_mode(*, include_images: bool) -> str:
    """The mode this platform's settings give (see the module docstring)."""
    if include_images:
        return "bundled"
    if settings.EXPORT_IMAGE_BASE_URL:
        return "base"
    if settings.AWS_STORAGE_BUCKET_NAME:
        return "signed"
    return "bundled"


def _read(key: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with default_storage.open(key, "rb") as handle:
            return bytes(handle.read())

    return read


@dataclass
class ImageColumns:
    """Turns raw batches into published ones; ships images in bundled mode; counts the
    distinct images streamed in a bitmap of catalogue ids (one byte per id up to the
    largest id seen: 1 MB per million images, whatever the number of rows)."""

    mode: str
    put_image: Callable[[str, Callable[[], bytes]], bool]
    images_written: int = 0
    _seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))

    def _note(self, ids: pa.Array) -> None:
        values = ids.to_numpy(zero_copy_only=False)
        if len(values) == 0:
            return
        top = int(values.max())
        if top >= len(self._seen):
            grown = np.zeros(max(top + 1, 2 * len(self._seen)), np.bool_)
            grown[: len(self._seen)] = self._seen
            self._seen = grown
        self._seen[values] = True

    @property
    def distinct_images(self) -> int:
        return int(np.count_nonzero(self._seen))

    def url_column(self, keys: pa.Array, hashes: pa.Array) -> pa.Array:
        if self.mode == "base":
            base = settings.EXPORT_IMAGE_BASE_URL.rstrip("/") + "/"
            return pc.binary_join_element_wise(base, keys, "")
        if self.mode == "signed":
            from annotator_app.catalog.sources import s3_client

            client = s3_client()
            params = {"Bucket": settings.AWS_STORAGE_BUCKET_NAME}
            expiry = settings.EXPORT_SIGNED_URL_SECONDS
            return pa.array(
                [
                    client.generate_presigned_url(
                        "get_object", Params={**params, "Key": key}, ExpiresIn=expiry
                    )
                    for key in keys.to_pylist()
                ],
                pa.string(),
            )
        extensions = pc.replace_substring_regex(keys, pattern=r"^.*\.", replacement="")
        names = pc.binary_join_element_wise(hashes, extensions, ".")
        for name, key in dict(zip(names.to_pylist(), keys.to_pylist(), strict=True)).items():
            if self.put_image(name, _read(key)):
                self.images_written += 1
        return pc.binary_join_element_wise("images/", names, "")

    def finish(self, raw: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        """The batch in the published (or full) `schema`, image columns filled in."""
        self._note(raw.column("_image_id"))
        columns = []
        for column in schema:
            if column.name == "image_url":
                keys, hashes = raw.column("_image_key"), raw.column("_image_sha256")
                columns.append(self.url_column(keys, hashes))
            elif column.name == "image_sha256":
                columns.append(raw.column("_image_sha256"))
            else:
                columns.append(raw.column(column.name))
        return pa.RecordBatch.from_arrays(columns, schema=schema)
