"""`python manage.py seed_demo`: idempotent demo users and images; prints the logins."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator_app.demo.services import demo_seed


class Command(BaseCommand):
    help = "Create demo users (admin, reviewer, two annotators) and demo images. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "DEMO_SEED_ALLOWED", False):
            raise CommandError("seed_demo is disabled in this configuration (DEMO_SEED_ALLOWED).")
        report = demo_seed()
        self.stdout.write(
            f"Demo images: {report.images_imported} imported, {report.images_present} already there."
        )
        if report.campaigns_created:
            self.stdout.write(f"Demo campaigns created: {', '.join(report.campaigns_created)}.")
        self.stdout.write("Demo logins (local use only):")
        for username, password, role in report.logins:
            self.stdout.write(f"  {role:<10} {username:<12} {password}")
