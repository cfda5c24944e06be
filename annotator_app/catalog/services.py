"""Catalog writes: topics, and importing image bytes into storage and the database."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from annotator_app.catalog.models import Image, Topic
from annotator_app.catalog.sources import SourceError, SourceItem, source_items
from pipelines.fetch import FetchRefused
from pipelines.images import ImageInfo, ImageRejected, inspect_image, make_thumbnail

logger = logging.getLogger(__name__)


class ImportStatus(StrEnum):
    IMPORTED = "imported"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one image: imported, duplicate (by hash) or rejected (reason)."""

    status: ImportStatus
    source: str
    image: Image | None = None
    reason: str = ""


@dataclass
class ImportSummary:
    """Every outcome of an import run; `items_read` counts items whose bytes arrived."""

    outcomes: list[ImportOutcome] = field(default_factory=list)
    items_read: int = 0

    def _with(self, status: ImportStatus) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def imported(self) -> list[ImportOutcome]:
        return self._with(ImportStatus.IMPORTED)

    @property
    def duplicates(self) -> list[ImportOutcome]:
        return self._with(ImportStatus.DUPLICATE)

    @property
    def rejected(self) -> list[ImportOutcome]:
        return self._with(ImportStatus.REJECTED)

    @property
    def counts(self) -> dict[str, int]:
        return {status.value: len(self._with(status)) for status in ImportStatus}

    @property
    def nothing_read(self) -> bool:
        return self.items_read == 0


class ImportTooLarge(ValueError):
    """The sources hold more items than this caller may import in one go."""


class TopicError(ValueError):
    """A topic cannot be created or found; the message says why."""


def topic_create(*, name: str, slug: str = "") -> Topic:
    """Create a topic; the slug defaults to the slugified name. Refuses duplicates."""
    name = name.strip()
    slug = slug.strip() or slugify(name)
    if not name or not slug:
        raise TopicError("a topic needs a name that gives a non-empty slug")
    if Topic.objects.filter(name__iexact=name).exists() or Topic.objects.filter(slug=slug).exists():
        raise TopicError(f"topic {name!r} (slug {slug!r}) already exists")
    try:
        with transaction.atomic():
            return Topic.objects.create(name=name, slug=slug)
    except IntegrityError:
        raise TopicError(f"topic {name!r} (slug {slug!r}) already exists") from None


def topic_ensure(*, name: str) -> Topic:
    """The topic with this slug or name, created when missing (admin tooling only)."""
    slug = slugify(name.strip())
    found = (
        Topic.objects.filter(slug=slug).first()
        or Topic.objects.filter(name__iexact=name.strip()).first()
    )
    if found is not None:
        return found
    try:
        return topic_create(name=name)
    except TopicError:
        # Created concurrently between the lookup and the insert.
        return Topic.objects.get(slug=slug)


def _topics(topics: Iterable[Topic | str]) -> list[Topic]:
    return [t if isinstance(t, Topic) else topic_ensure(name=t) for t in topics]


def image_storage_key(*, info: ImageInfo) -> str:
    """Content-addressed name: `images/ab/cd/<sha256>.<ext>`; same bytes, same name."""
    sha = info.sha256
    return f"images/{sha[:2]}/{sha[2:4]}/{sha}.{info.extension}"


def _store_file(*, key: str, data: bytes, sha256: str) -> bool:
    """Put `data` at `key`; True when this call wrote the file (and so owns cleanup)."""
    if default_storage.exists(key):
        # A file under this name but no row: left by a crash between storing and
        # committing. The name is the hash, so reuse it once its bytes check out.
        with default_storage.open(key, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() == sha256:
                return False
        logger.warning("replacing corrupt orphan file %s", key)
        default_storage.delete(key)
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:
        # Storage never overwrites: a concurrent import stored the same bytes first and
        # we got a renamed copy. Drop the copy; the original is identical.
        default_storage.delete(saved)
        return False
    return True


def _duplicate(*, image: Image, topics: list[Topic], source_url: str) -> ImportOutcome:
    if topics:
        image.topics.add(*topics)
    return ImportOutcome(ImportStatus.DUPLICATE, source_url, image=image)


def image_import_bytes(
    *,
    data: bytes,
    source_url: str = "",
    topics: Iterable[Topic | str] = (),
    created_by: Any = None,
) -> ImportOutcome:
    """Check `data` by content, store it content-addressed and create its row.

    Same bytes already known: a duplicate, and the given topics are added to it.
    Rejected bytes write nothing: no row, no file. If storing succeeded but the row
    could not be created, the file this call wrote is deleted again. Topics given as
    strings are found by slug or name and created when missing.
    """
    try:
        info = inspect_image(
            data,
            max_bytes=settings.IMAGE_MAX_BYTES,
            max_pixels=settings.IMAGE_MAX_PIXELS,
            max_frames=settings.IMAGE_MAX_FRAMES,
            max_total_pixels=settings.IMAGE_MAX_TOTAL_PIXELS,
        )
    except ImageRejected as exc:
        return ImportOutcome(ImportStatus.REJECTED, source_url, reason=exc.reason)
    topic_rows = _topics(topics)
    existing = Image.objects.filter(sha256=info.sha256).first()
    if existing is not None:
        return _duplicate(image=existing, topics=topic_rows, source_url=source_url)
    key = image_storage_key(info=info)
    wrote = _store_file(key=key, data=data, sha256=info.sha256)
    try:
        with transaction.atomic():
            image = Image.objects.create(
                sha256=info.sha256,
                width=info.width,
                height=info.height,
                format=info.format,
                mime=info.mime,
                size_bytes=len(data),
                source_url=source_url,
                storage_key=key,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
            image.topics.add(*topic_rows)
    except IntegrityError:
        raced = Image.objects.filter(sha256=info.sha256).first()
        if raced is None:
            _discard(key=key, wrote=wrote)
            raise
        return _duplicate(image=raced, topics=topic_rows, source_url=source_url)
    except BaseException:
        _discard(key=key, wrote=wrote)
        raise
    return ImportOutcome(ImportStatus.IMPORTED, source_url, image=image)


def _discard(*, key: str, wrote: bool) -> None:
    if wrote:
        default_storage.delete(key)


def item_import(
    *, item: SourceItem, topics: Iterable[Topic | str] = (), created_by: Any = None
) -> tuple[ImportOutcome, bool]:
    """The outcome for one listed item, and whether its bytes could be read at all."""
    try:
        data = item.load()
    except (SourceError, FetchRefused) as exc:
        return ImportOutcome(ImportStatus.REJECTED, item.label, reason=exc.reason), False
    outcome = image_import_bytes(
        data=data, source_url=item.label, topics=topics, created_by=created_by
    )
    return outcome, True


def sources_list(
    *, sources: Sequence[str], allow_local_paths: bool
) -> tuple[list[SourceItem], list[ImportOutcome]]:
    """The items the sources hold, and a rejection for each source that cannot be listed."""
    items: list[SourceItem] = []
    refused: list[ImportOutcome] = []
    for source in sources:
        try:
            items.extend(source_items(source, allow_local_paths=allow_local_paths))
        except SourceError as exc:
            refused.append(ImportOutcome(ImportStatus.REJECTED, source, reason=exc.reason))
    return items, refused


def images_import(
    *,
    sources: Sequence[str],
    topics: Iterable[Topic | str] = (),
    created_by: Any = None,
    allow_local_paths: bool = True,
    max_items: int | None = None,
    on_total: Callable[[int], None] | None = None,
    on_item: Callable[[ImportOutcome], None] | None = None,
) -> ImportSummary:
    """Import every image the sources hold and summarise what happened.

    A source is a folder (recursive), a text file of URLs (.txt/.urls/.list, one per
    line, # comments), a single image file, an http(s) URL or `s3://bucket/prefix`.
    Local paths are refused when `allow_local_paths` is False (the web API). Sources
    are listed first so `on_total` can size a progress bar; more than `max_items`
    raises ImportTooLarge before anything is imported.
    """
    topic_rows = _topics(topics)
    items, refused = sources_list(sources=sources, allow_local_paths=allow_local_paths)
    summary = ImportSummary(outcomes=list(refused))
    if max_items is not None and len(items) > max_items:
        raise ImportTooLarge(
            f"the sources hold {len(items)} items; at most {max_items} may be imported "
            "here — use `manage.py import_images` for bulk imports"
        )
    if on_total is not None:
        on_total(len(items))
    for item in items:
        outcome, was_read = item_import(item=item, topics=topic_rows, created_by=created_by)
        summary.items_read += int(was_read)
        summary.outcomes.append(outcome)
        if on_item is not None:
            on_item(outcome)
    return summary


THUMBNAIL_SIDE = 160


def thumbnail_storage_key(*, image: Image) -> str:
    """`thumbs/ab/cd/<sha256>-160.jpg`: one thumbnail per image, named by its content."""
    sha = image.sha256
    return f"thumbs/{sha[:2]}/{sha[2:4]}/{sha}-{THUMBNAIL_SIDE}.jpg"


def image_thumbnail_ensure(*, image: Image) -> str:
    """The storage key of the image's thumbnail, made from the stored image if missing.

    Made on first view rather than at import, so images imported before thumbnails
    existed get one too. Two first views at once both make it; storage keeps one.
    """
    key = thumbnail_storage_key(image=image)
    if default_storage.exists(key):
        return key
    with default_storage.open(image.storage_key, "rb") as handle:
        data = handle.read()
    thumb = make_thumbnail(data, max_side=THUMBNAIL_SIDE, max_pixels=settings.IMAGE_MAX_PIXELS)
    saved = default_storage.save(key, ContentFile(thumb))
    if saved != key:  # made concurrently: ours is a renamed copy
        default_storage.delete(saved)
    return key
