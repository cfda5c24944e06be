"""`python manage.py generate_capqa --campaign C`: CapQA pairs from accepted captions."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotator_app.ama import capqa
from annotator_app.ama.models import CapQARun
from annotator_app.work.models import Campaign, CampaignKind
from pipelines.llm import LLMError, LLMUnavailable


class Command(BaseCommand):
    help = (
        "Write CapQA question-answer pairs with the LLM from the accepted captions of a cap "
        "campaign. By default one Celery task per caption runs on the `llm` queue and this "
        "command follows the run; --inline runs them here instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="cap campaign name or id")
        parser.add_argument(
            "--inline", action="store_true", help="run in this process (no worker needed)"
        )
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="seconds to follow a queued run"
        )

    def _campaign(self, value: str) -> Campaign:
        found = Campaign.objects.filter(name=value).first()
        if found is None and value.isdigit():
            found = Campaign.objects.filter(pk=int(value)).first()
        if found is None:
            raise CommandError(f"--campaign: no campaign named or numbered {value!r}")
        if found.kind != CampaignKind.CAP:
            raise CommandError(f"--campaign: {found.name} is a {found.kind} campaign, not cap")
        return found

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = self._campaign(options["campaign"])
        run, caption_ids = capqa.capqa_run_start(campaign=campaign, enqueue=not options["inline"])
        self.stdout.write(
            f"CapQA run {run.pk}: {len(caption_ids)} accepted captions of {campaign.name}"
        )
        if options["inline"]:
            self._inline(run, caption_ids)
        else:
            self._follow(run, options["timeout"])
        self._report(run.pk)

    def _inline(self, run: CapQARun, caption_ids: list[int]) -> None:
        for caption_id in tqdm(caption_ids, desc="captions", unit="caption", file=self.stderr):
            try:
                capqa.capqa_caption_process(run_id=run.pk, caption_id=caption_id)
            except (LLMUnavailable, LLMError) as exc:
                self.stderr.write(f"caption {caption_id}: {exc}")
                capqa.capqa_caption_failed(run_id=run.pk)

    def _follow(self, run: CapQARun, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with tqdm(total=run.total, desc="captions", unit="caption", file=self.stderr) as bar:
            while True:
                current = CapQARun.objects.get(pk=run.pk)
                bar.update(current.processed - bar.n)
                if current.finished_at is not None or current.processed >= current.total:
                    return
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"run {run.pk} not finished after {timeout:.0f} s "
                        f"({current.processed}/{current.total}); is a worker on the llm queue "
                        "running? The tasks stay queued."
                    )
                time.sleep(1.0)

    def _report(self, run_id: int) -> None:
        counts = capqa.capqa_run_counts(run_id=run_id)
        self.stdout.write(
            f"captions: {counts['processed']}/{counts['total']} processed, {counts['failed']} failed (LLM)"
        )
        self.stdout.write(f"pairs kept: {counts['pairs_kept']}")
        self.stdout.write(f"pairs rejected: {counts['pairs_rejected']}")
        rejections = counts["rejections"]
        assert isinstance(rejections, dict)
        for reason, count in rejections.items():
            self.stdout.write(f"  {reason}: {count}")
