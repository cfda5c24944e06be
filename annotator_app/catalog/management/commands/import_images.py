"""`manage.py import_images SOURCE... [--topic T ...] [--campaign C]`."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotator_app.catalog.services import ImportOutcome, ImportSummary, images_import


class Command(BaseCommand):
    help = (
        "Import images from folders (recursive), text files of URLs (.txt/.urls/.list), "
        "http(s) URLs and s3://bucket/prefix. Prints imported / duplicate / rejected "
        "counts and one line per rejection. Exits non-zero only when nothing was read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sources", nargs="+", metavar="SOURCE")
        parser.add_argument(
            "--topic", action="append", default=[], help="topic name (created when missing); repeat"
        )
        parser.add_argument("--campaign", help="not available yet (arrives with campaigns)")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["campaign"]:
            self.stderr.write(
                f"--campaign {options['campaign']!r} ignored: campaigns are not available "
                "yet; images are imported into the catalog only."
            )
        # disable=None: tqdm shows the bar only on a terminal, never in logs or tests.
        bar = tqdm(unit="image", disable=options["no_progress"] or None, file=sys.stderr)

        def on_total(total: int) -> None:
            bar.reset(total=total)

        def on_item(outcome: ImportOutcome) -> None:
            bar.update(1)

        try:
            summary = images_import(
                sources=options["sources"],
                topics=options["topic"],
                on_total=on_total,
                on_item=on_item,
            )
        finally:
            bar.close()
        self._report(summary)
        if summary.nothing_read:
            raise CommandError("nothing could be read from the given sources")

    def _report(self, summary: ImportSummary) -> None:
        counts = summary.counts
        self.stdout.write(
            f"imported: {counts['imported']}  duplicate: {counts['duplicate']}  "
            f"rejected: {counts['rejected']}"
        )
        for outcome in summary.rejected:
            self.stdout.write(f"rejected {outcome.source}: {outcome.reason}")
