"""Demo data for `make run`: users of every role and images that install offline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotator_app.accounts.models import Role, User
from annotator_app.accounts.services import user_ensure

# Local demo only: `seed_demo` refuses to run where settings.DEMO_SEED_ALLOWED is False
# (production), so these passwords never exist on a deployed platform.
DEMO_USERS: list[tuple[str, str, Role]] = [
    ("admin", "pixmo-admin-demo", Role.ADMIN),
    ("reviewer", "pixmo-reviewer-demo", Role.REVIEWER),
    ("annotator1", "pixmo-annotator1-demo", Role.ANNOTATOR),
    ("annotator2", "pixmo-annotator2-demo", Role.ANNOTATOR),
]


@dataclass
class SeedReport:
    users_created: list[str] = field(default_factory=list)
    images_imported: int = 0
    images_present: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    campaigns_created: list[str] = field(default_factory=list)


# Demo campaigns over the demo images: (name, settings). Created once, never changed.
DEMO_CAMPAIGNS: list[tuple[str, dict[str, Any]]] = [
    (
        "Demo: spoken descriptions",
        {"kind": "cap", "overlap": 1, "min_seconds": 60, "live_guidance": True},
    ),
    (
        "Demo: pointing",
        {
            "kind": "points",
            "overlap": 1,
            "collection_method": "pointing",  # the prompts are offered as suggestions
            "label_prompts": ["person", "cup", "cat", "text"],
        },
    ),
    ("Demo: ask me anything", {"kind": "ama", "overlap": 1}),
]


def demo_campaigns_ensure(*, images: list[Any]) -> list[str]:
    """Create the missing demo campaigns over `images`; returns the names created."""
    from annotator_app.work.models import Campaign
    from annotator_app.work.services import campaign_create

    created = []
    for name, settings in DEMO_CAMPAIGNS:
        if not Campaign.objects.filter(name=name).exists():
            campaign_create(name=name, images=images, **settings)
            created.append(name)
    return created


def demo_seed() -> SeedReport:
    """Create the demo users, images and campaigns; running it again changes nothing."""
    from annotator_app.catalog.services import image_import_bytes
    from pipelines.demo_images import demo_images

    report = SeedReport()
    admin: User | None = None
    for username, password, role in DEMO_USERS:
        user, created = user_ensure(username=username, password=password, role=role)
        if created:
            report.users_created.append(username)
        if role == Role.ADMIN:
            admin = user
        report.logins.append((username, password, role.label))

    images = []
    for demo in demo_images():
        outcome = image_import_bytes(
            data=demo.data,
            source_url=f"demo:{demo.name}",
            topics=demo.topics,
            created_by=admin,
        )
        if outcome.status == "imported":
            report.images_imported += 1
        else:
            report.images_present += 1
        if outcome.image is not None:
            images.append(outcome.image)
    report.campaigns_created = demo_campaigns_ensure(images=images)
    return report
