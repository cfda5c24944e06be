"""`manage.py make_audio_seekable`: give WebM recordings stored before seekable copies
existed their copy (uploads since make it at once)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotator_app.captions.models import Recording
from annotator_app.captions.services import recording_make_seekable


class Command(BaseCommand):
    help = (
        "Store a remuxed copy (with duration and seek index) of each WebM recording that "
        "has none, so review and history pages can seek in it. Idempotent; prints counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=0, help="at most N recordings (0: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = Recording.objects.filter(
            playback_key="", mime_type__in=("audio/webm", "audio/x-matroska")
        ).order_by("id")
        if options["limit"] > 0:
            rows = rows[: options["limit"]]
        made = missing = failed = 0
        for recording in rows.iterator():
            try:
                key = recording_make_seekable(recording=recording)
            except FileNotFoundError:
                missing += 1
                self.stderr.write(f"recording {recording.pk}: file {recording.storage_key} missing")
                continue
            if key:
                made += 1
            else:
                failed += 1
                self.stderr.write(f"recording {recording.pk}: could not be remuxed (see log)")
        self.stdout.write(
            f"seekable copies made: {made}; not remuxable: {failed}; missing: {missing}"
        )
