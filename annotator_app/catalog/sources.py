"""Where imported images come from: folders, URL lists, URLs and S3 prefixes.

Each source is listed into items first (a label and a loader), so a caller knows how
many there are before any bytes move. Loaders read at most IMAGE_MAX_BYTES (+1 to tell
"over the limit" apart) and raise SourceError or FetchRefused with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from pipelines.fetch import fetch_url

URL_LIST_SUFFIXES = {".txt", ".urls", ".list"}


class SourceError(Exception):
    """A source or one of its items cannot be read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SourceItem:
    label: str  # a path, URL or s3:// URI, recorded as the image's source
    load: Callable[[], bytes]


def _too_large(size: int) -> SourceError:
    return SourceError(f"file too large: {size} bytes, the limit is {settings.IMAGE_MAX_BYTES}")


def source_items(source: str, *, allow_local_paths: bool) -> list[SourceItem]:
    """List the items of one source; raise SourceError when it cannot be read."""
    source = source.strip()
    if source.lower().startswith("s3://"):
        return _s3_items(source)
    if "://" in source:
        return [_url_item(source)]
    if not allow_local_paths:
        raise SourceError("local paths are not accepted here; give http(s) URLs or s3:// URIs")
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder_items(path)
    if path.is_file():
        if path.suffix.lower() in URL_LIST_SUFFIXES:
            return _url_list_items(path)
        return [_file_item(path)]
    raise SourceError(f"no such file or folder: {source}")


def _url_item(url: str) -> SourceItem:
    def load() -> bytes:
        result = fetch_url(
            url,
            max_bytes=settings.IMAGE_MAX_BYTES,
            timeout=settings.FETCH_TIMEOUT_SECONDS,
            max_redirects=settings.FETCH_MAX_REDIRECTS,
            allowed_addresses=settings.FETCH_ALLOWED_ADDRESSES,
        )
        return result.data

    return SourceItem(url, load)


def _file_item(path: Path) -> SourceItem:
    def load() -> bytes:
        try:
            size = path.stat().st_size
            # Read one byte past the limit rather than trusting stat(): devices and
            # growing files report sizes that do not bound what read() returns.
            with path.open("rb") as handle:
                data = handle.read(settings.IMAGE_MAX_BYTES + 1)
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from None
        if max(size, len(data)) > settings.IMAGE_MAX_BYTES:
            raise _too_large(max(size, len(data)))
        return data

    return SourceItem(str(path), load)


def stored_upload_item(*, key: str, name: str, size: int) -> SourceItem:
    """A file uploaded through the browser and kept in the default storage under `key`.

    An upload over the size limit was never stored (empty key): it loads as "too large"
    with the size the browser sent, like an oversized file in a folder.
    """
    from django.core.files.storage import default_storage

    def load() -> bytes:
        if size > settings.IMAGE_MAX_BYTES or not key:
            raise _too_large(size)
        try:
            with default_storage.open(key, "rb") as handle:
                data: bytes = handle.read(settings.IMAGE_MAX_BYTES + 1)
        except OSError as exc:
            raise SourceError(f"the uploaded file is gone: {exc}") from None
        if len(data) > settings.IMAGE_MAX_BYTES:
            raise _too_large(len(data))
        return data

    return SourceItem(f"upload:{name}", load)


def _folder_items(root: Path) -> list[SourceItem]:
    """Every regular file below `root`, sorted; dot-files (.DS_Store, ...) are skipped."""
    items: list[SourceItem] = []
    # followlinks=False: a symlink loop must not make the walk endless.
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                items.append(_file_item(Path(folder) / name))
    return items


def _url_list_items(path: Path) -> list[SourceItem]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read URL list {path}: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [_url_item(line) for line in lines if line and not line.startswith("#")]


def s3_key_problem(key: str, *, prefix: bool = False) -> str | None:
    """Why an S3 key (or, with `prefix`, a listing prefix) is refused, or None.

    S3 takes any string as a key, but a key with a '..' or '.' segment or an empty one
    ('a//b', '/a') means something else to every path-minded tool downstream (a
    filesystem mirror, a proxy normalising URLs) than to S3: such keys are never read
    or written. A prefix may end with '/' (a folder) and may be empty (the bucket).
    """
    segments = key.split("/")
    if prefix and segments[-1] == "":
        segments = segments[:-1]
    if any(segment in ("..", ".") for segment in segments):
        return f"S3 key {key!r} has a '..' or '.' segment"
    if "" in segments and key != "":
        return f"S3 key {key!r} has an empty segment (a leading, trailing or double '/')"
    return None


def s3_client() -> Any:
    """A boto3 S3 client for the configured endpoint (moto or MinIO when set)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        region_name=settings.AWS_S3_REGION_NAME,
    )


def _s3_items(uri: str) -> list[SourceItem]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise SourceError(f"no bucket in {uri!r}; expected s3://bucket/prefix")
    problem = s3_key_problem(prefix, prefix=True)
    if problem is not None:
        raise SourceError(f"refused {uri}: {problem}")
    client = s3_client()
    items: list[SourceItem] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):  # folder markers hold no image
                    items.append(_s3_item(client, bucket, obj["Key"], int(obj["Size"])))
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"cannot list {uri}: {exc}") from None
    return items


def _s3_item(client: Any, bucket: str, key: str, size: int) -> SourceItem:
    def load() -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        problem = s3_key_problem(key)
        if problem is not None:
            raise SourceError(f"refused: {problem}")
        if size > settings.IMAGE_MAX_BYTES:
            raise _too_large(size)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            data: bytes = body.read(settings.IMAGE_MAX_BYTES + 1)
            body.close()
        except (BotoCoreError, ClientError) as exc:
            raise SourceError(f"cannot read s3://{bucket}/{key}: {exc}") from None
        if len(data) > settings.IMAGE_MAX_BYTES:
            raise _too_large(len(data))
        return data

    return SourceItem(f"s3://{bucket}/{key}", load)
