"""`manage.py export_pixmo DATASET --out DIR`: one snapshot, written here with a progress bar.

The same engine as the admin page and the API (services.export_run), run in this process
instead of a Celery worker; the snapshot is recorded like theirs (list of past exports).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotator_app.exports import services
from annotator_app.exports.sources import SOURCES
from annotator_app.exports.sources.base import STATUS_CHOICES


class Command(BaseCommand):
    help = (
        "Export a PixMo dataset snapshot (shards, manifest.json, README.md dataset card) "
        "to a folder (must be absent or empty) or s3://bucket/prefix."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", choices=sorted(SOURCES))
        parser.add_argument("--out", required=True, help="folder or s3://bucket/prefix")
        parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
        parser.add_argument("--full", action="store_true", help="add our metadata columns")
        parser.add_argument("--campaign", help="campaign id or name")
        parser.add_argument("--since", help="work created on or after this date (YYYY-MM-DD)")
        parser.add_argument("--status", choices=sorted(STATUS_CHOICES), default="accepted")
        parser.add_argument(
            "--images", action="store_true", help="ship the image files in the snapshot"
        )
        parser.add_argument("--count", type=int, help="synthetic sets: number of examples")
        parser.add_argument("--seed", type=int, default=0, help="synthetic sets: seed")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            export = services.export_create(
                dataset=options["dataset"],
                format=options["format"],
                full=options["full"],
                campaign=options["campaign"],
                since=options["since"],
                status=options["status"],
                include_images=options["images"],
                count=options["count"],
                seed=options["seed"],
            )
        except services.ExportInvalid as exc:
            raise CommandError(str(exc)) from None
        bar = tqdm(unit="rows", disable=options["no_progress"], file=sys.stderr, dynamic_ncols=True)

        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            export = services.export_run(export_id=export.pk, out=options["out"], progress=progress)
        except services.ExportInvalid as exc:
            raise CommandError(str(exc)) from None
        except FileExistsError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        manifest = export.manifest or {}
        self.stdout.write(
            f"export {export.pk}: {manifest.get('rows', 0)} rows in "
            f"{len(manifest.get('shards', []))} shard(s) -> {export.location}"
        )
