"""Work engine: campaigns, the items they cover, and leased assignments.

The assignment algorithm (states, invariants, expiry, skip, reject) is described in
ALGORITHM.md next to this file.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotator_app.catalog.models import Image, Topic


class CampaignKind(models.TextChoices):
    CAP = "cap", "PixMo-Cap (spoken descriptions)"
    POINTS = "points", "PixMo-Points (pointing)"
    AMA = "ama", "PixMo-AMA (ask me anything)"


class CollectionMethod(models.TextChoices):
    """How a points campaign gets its labels (PixMo-Points' `collection_method`)."""

    POINTING = "pointing", "Pointing (annotators name things and point at every instance)"
    COUNTING = "counting", "Counting (the campaign's label prompts; some may be absent)"


class Campaign(models.Model):
    """What to annotate, how many times, and how."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=8, choices=CampaignKind.choices)
    topics = models.ManyToManyField(Topic, blank=True, related_name="campaigns")
    images = models.ManyToManyField(Image, blank=True, related_name="campaigns")
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Annotations wanted per image, each from a different annotator."
    )
    min_seconds = models.PositiveIntegerField(
        default=60, help_text="Cap: shortest accepted recording, in seconds."
    )
    max_seconds = models.PositiveIntegerField(
        default=600, help_text="Cap: longest accepted recording, in seconds."
    )
    label_prompts = models.JSONField(
        default=list,
        blank=True,
        help_text="Points: labels annotators are asked to point at (counting: every one is "
        "answered; pointing: offered as suggestions).",
    )
    collection_method = models.CharField(
        max_length=8,
        choices=CollectionMethod.choices,
        default=CollectionMethod.COUNTING,
        db_default=CollectionMethod.COUNTING,
        help_text="Points: pointing (annotators name things) or counting (the label prompts).",
    )
    guidelines = models.TextField(blank=True, default="")
    live_guidance = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Cap: show a live transcript and tick off the guiding questions while "
        "annotators speak (needs the `live` worker).",
    )
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    active = models.BooleanField(default=True)
    breadth_first = models.BooleanField(
        default=False, help_text="Finish items that already have annotations before new ones."
    )
    lease_seconds = models.PositiveIntegerField(default=600)
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="reviewed_campaigns"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(
                condition=Q(max_seconds__gte=F("min_seconds")), name="campaign_seconds_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class WorkItem(models.Model):
    """One image of one campaign.

    `open_slots` = overlap - (leased + submitted + accepted assignments), kept by the
    services in the same transaction as every assignment change; the claim query reads
    it through a partial index, so claiming never scans finished items.
    `done_count` counts accepted or submitted-and-unrejected work, for breadth-first
    ordering and progress.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="work_items")
    open_slots = models.PositiveSmallIntegerField()
    done_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "image"], name="workitem_unique_image"),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "id"], name="workitem_open", condition=Q(open_slots__gt=0)
            ),
            models.Index(
                F("campaign"),
                F("done_count").desc(),
                F("id"),
                name="workitem_open_breadth",
                condition=Q(open_slots__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.campaign_id}/{self.image_id})"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


# Assignments in these states hold one of the item's overlap slots.
SLOT_HOLDING = (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)


class Assignment(models.Model):
    """One annotator's turn at one item; at most one per (item, annotator)."""

    item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_until = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    active_seconds = models.PositiveIntegerField(default=0)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verdicts",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.TextField(blank=True, default="")
    # db_default too: the claim statement inserts assignments with its own column list.
    skip_reason = models.TextField(
        blank=True, default="", db_default="", help_text="Why the annotator skipped."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_unique_turn"),
        ]
        indexes = [
            # The lease an annotator already holds (the first thing "next" looks for).
            models.Index(
                fields=["annotator"],
                name="assignment_live_lease",
                condition=Q(status="leased"),
            ),
            # A reclaimed lease its owner may get back ("next" looks for it second).
            models.Index(
                fields=["annotator"],
                name="assignment_expired_turn",
                condition=Q(status="expired"),
            ),
            # The expiry sweep.
            models.Index(
                fields=["leased_until"], name="assignment_lease_end", condition=Q(status="leased")
            ),
            # Review queues and history.
            models.Index(fields=["status", "submitted_at"], name="assignment_status_time"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


# --- claim cursors (see ALGORITHM.md, "Claiming next") -------------------------------------

# The lane of the wrap-around scan; lanes 0.. are breadth-first levels (done_count), and a
# depth-first campaign uses lane 0 for its single forward scan.
WRAP_LANE = -1


class ClaimCursor(models.Model):
    """Where one annotator's forward scan of one campaign stands, per lane.

    Items above `after_id` in the lane were never claimed by this annotator through that
    lane's forward scan, so the next claim starts there instead of walking past the
    annotator's own history. Kept by the claim under the user's row lock.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    lane = models.SmallIntegerField()
    after_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "campaign", "lane"], name="claimcursor_unique_lane"
            ),
        ]

    def __str__(self) -> str:
        return f"cursor {self.campaign_id}/{self.annotator_id} lane {self.lane}: {self.after_id}"


class ReopenedItem(models.Model):
    """An item that got a slot back (expiry, skip, release, reject).

    Forward scans may have passed it while it was full; the claim looks here first so
    the item is served again promptly. Entries of full items are pruned by the sweep.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField(WorkItem, on_delete=models.CASCADE, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["campaign", "item"], name="reopened_campaign_item")]

    # --- counters (see counters.py) ------------------------------------------------------------

    def __str__(self) -> str:
        return f"reopened item {self.item_id}"


class CampaignCounter(models.Model):
    """One shard of a campaign's totals; shard = item id % COUNTER_SHARDS.

    Every move adds its delta to its item's shard in the move's own transaction, so
    concurrent moves on different items rarely wait on the same row. Progress reads sum
    the shards; `work.repair_counters` checks them against the rows they summarise.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="counters")
    shard = models.SmallIntegerField()
    items = models.BigIntegerField(default=0)
    items_complete = models.BigIntegerField(default=0)
    open_slots = models.BigIntegerField(default=0)
    leased = models.BigIntegerField(default=0)
    submitted = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    expired = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "shard"], name="campaigncounter_unique"),
        ]

    def __str__(self) -> str:
        return f"counters {self.campaign_id}/{self.shard}"


class CampaignDayCounter(models.Model):
    """Submissions of one campaign on one day (TIME_ZONE), one shard of them."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    shard = models.SmallIntegerField()
    submissions = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "day", "shard"], name="campaigndaycounter_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"submissions {self.campaign_id}/{self.day}/{self.shard}: {self.submissions}"


class AnnotatorCounter(models.Model):
    """One annotator's figures in one campaign: submissions (whatever their verdict),
    verdicts, and the active seconds of the submitted work."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    items = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    active_seconds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "annotator"], name="annotatorcounter_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"figures {self.campaign_id}/{self.annotator_id}"
