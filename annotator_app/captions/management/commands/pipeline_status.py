"""`manage.py pipeline_status [--limit N]`: where the caption pipeline stands."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotator_app.captions.maintenance import pipeline_overview


class Command(BaseCommand):
    help = (
        "Counts of recordings and image summaries per state, the oldest unfinished rows "
        "(with their age and attempts), the latest failures with their reasons, and the "
        "latest flagged ASR output with the flags."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=10, help="rows per list (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        view = pipeline_overview(limit=max(options["limit"], 1))
        out = self.stdout.write
        out("recordings: " + ", ".join(f"{k} {v}" for k, v in view.recordings.items()))
        out("summaries: " + ", ".join(f"{k} {v}" for k, v in view.summaries.items()))
        out(f"cleaned captions that fell back to the rule-based text: {view.cleaned_fallbacks}")
        out("oldest unfinished:" if view.stuck else "oldest unfinished: none")
        for s in view.stuck:
            out(f"  {s.kind} {s.id}: {s.status} for {s.age_seconds:.0f} s, {s.attempts} attempt(s)")
        out("recent failures:" if view.failures else "recent failures: none")
        for f in view.failures:
            out(f"  {f.kind} {f.id} at {f.updated_at:%Y-%m-%d %H:%M:%S}: {f.reason}")
        out("recently flagged ASR output:" if view.flagged else "recently flagged ASR output: none")
        for f in view.flagged:
            out(f"  {f.kind} {f.id} at {f.updated_at:%Y-%m-%d %H:%M:%S}: {f.reason}")
