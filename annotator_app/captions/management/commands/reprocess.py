"""`manage.py reprocess`: restart caption pipeline work by recording, item, stage or failure."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator_app.captions.maintenance import (
    STAGES,
    ReprocessError,
    item_reprocess,
    recording_reprocess,
    stage_requeue,
    summary_reprocess,
)
from annotator_app.captions.models import ImageSummary, Recording, RecordingStatus, SummaryStatus


class Command(BaseCommand):
    help = (
        "Restart pipeline work. Select with --recording IDs, --item IDs (work items), "
        "--failed (failed recordings and summaries) or --flagged (recordings whose ASR "
        "output was flagged); --stage asr|clean|summary says where to restart (default: "
        "where each stopped; flagged ones are transcribed again, and --stage clean passes "
        "a checked transcript on). --stage alone re-enqueues everything waiting for or "
        "running that stage. Prints one line per row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--recording", type=int, nargs="+", default=[], metavar="ID")
        parser.add_argument("--item", type=int, nargs="+", default=[], metavar="ID")
        parser.add_argument("--failed", action="store_true")
        parser.add_argument("--flagged", action="store_true")
        parser.add_argument("--stage", choices=STAGES)

    def handle(self, *args: Any, **options: Any) -> None:
        stage: str | None = options["stage"]
        selected = options["recording"] or options["item"] or options["failed"]
        if not (selected or options["flagged"] or stage):
            raise CommandError(
                "say what to reprocess: --recording, --item, --failed, --flagged or --stage"
            )
        lines: list[str] = []
        errors: list[str] = []

        def run(fn: Any, **kwargs: Any) -> None:
            try:
                result = fn(**kwargs)
            except ReprocessError as exc:
                errors.append(str(exc))
                return
            lines.extend(result if isinstance(result, list) else [result])

        if not (selected or options["flagged"]):
            run(stage_requeue, stage=stage)
        recording_stage = None if stage == "summary" else stage
        for rid in options["recording"]:
            if stage == "summary":
                item_id = (
                    Recording.objects.filter(id=rid)
                    .values_list("assignment__item_id", flat=True)
                    .first()
                )
                if item_id is None:
                    errors.append(f"recording {rid} does not exist")
                else:
                    run(item_reprocess, item_id=item_id, stage="summary")
            else:
                run(recording_reprocess, recording_id=rid, stage=recording_stage)
        for item_id in options["item"]:
            run(item_reprocess, item_id=item_id, stage=stage)
        if options["failed"]:
            failed = Recording.objects.filter(status=RecordingStatus.FAILED).order_by("id")
            for rid in failed.values_list("id", flat=True):
                run(recording_reprocess, recording_id=rid, stage=recording_stage)
            summaries = ImageSummary.objects.filter(status=SummaryStatus.FAILED).order_by("id")
            for sid in summaries.values_list("id", flat=True):
                run(summary_reprocess, summary_id=sid)
        if options["flagged"]:
            flagged = Recording.objects.filter(status=RecordingStatus.FLAGGED).order_by("id")
            for rid in flagged.values_list("id", flat=True):
                run(recording_reprocess, recording_id=rid, stage=recording_stage)
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"{len(lines)} reprocessed")
        for error in errors:
            self.stderr.write(error)
        if errors and not lines:
            raise CommandError(f"nothing reprocessed: {len(errors)} error(s)")
