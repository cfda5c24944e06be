"""PixMo-AMA sessions and rounds, the per-image OCR cache, and CapQA pairs.

An `AmaSession` is one annotator's question loop on one assigned image; each `AmaRound`
is one answer to that question (the first, then one per rejection), stored with the
evidence it was built from (caption, its source, OCR text), the prompt version, the
model, the answer, the annotator's verdict and feedback, and timings. The accepted
round is the QA pair; the rejected rounds of the same session are its preference pairs
(chosen = accepted answer, rejected = that round's answer, with its feedback).
The loop is described in LOOP.md next to this file.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotator_app.catalog.models import Image
from annotator_app.work.models import Assignment, Campaign

QUESTION_MAX_CHARS = 2000
FEEDBACK_MAX_CHARS = 2000


class SessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACCEPTED = "accepted", "Accepted (the QA pair exists)"
    SKIPPED = "skipped", "Skipped (abandoned, with a reason)"


class AmaSession(models.Model):
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="ama_session"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ama_sessions"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="ama_sessions")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="ama_sessions")
    status = models.CharField(
        max_length=8, choices=SessionStatus.choices, default=SessionStatus.OPEN
    )
    skip_reason = models.TextField(blank=True, default="")
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["campaign", "status"], name="ama_session_campaign")]

    def __str__(self) -> str:
        return f"AMA session {self.pk} ({self.status})"


class RoundStatus(models.TextChoices):
    """Where making the answer stands."""

    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Being answered"
    DONE = "done", "Answered"
    FAILED = "failed", "Failed (retry possible)"


class Verdict(models.TextChoices):
    PENDING = "pending", "Not judged yet"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected with feedback"


class AmaRound(models.Model):
    session = models.ForeignKey(AmaSession, on_delete=models.CASCADE, related_name="rounds")
    index = models.PositiveSmallIntegerField(help_text="1 for the first answer, then 2, 3, ...")
    question = models.TextField()
    status = models.CharField(
        max_length=8, choices=RoundStatus.choices, default=RoundStatus.PENDING
    )
    failure_reason = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # The evidence.
    caption = models.TextField(blank=True, default="")
    caption_source = models.CharField(max_length=16, blank=True, default="")
    caption_model = models.CharField(max_length=200, blank=True, default="")
    ocr_text = models.TextField(blank=True, default="")
    ocr_engine = models.CharField(max_length=64, blank=True, default="")
    ocr_instruction_like = models.BooleanField(
        default=False, help_text="The OCR text reads like an instruction (it was quoted as data)."
    )
    # The answer.
    prompt_version = models.CharField(max_length=32, blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    answer = models.TextField(blank=True, default="")
    answer_problems = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # The annotator's judgement.
    verdict = models.CharField(max_length=8, choices=Verdict.choices, default=Verdict.PENDING)
    feedback = models.TextField(blank=True, default="")
    # Timings (milliseconds; 0 when the stage was cached or not run).
    caption_ms = models.PositiveIntegerField(default=0)
    ocr_ms = models.PositiveIntegerField(default=0)
    llm_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    stage_started_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "index"]
        constraints = [
            models.UniqueConstraint(fields=["session", "index"], name="ama_round_unique_index"),
            # At most one accepted round per session: the QA pair.
            models.UniqueConstraint(
                fields=["session"], condition=Q(verdict="accepted"), name="ama_round_one_accepted"
            ),
        ]
        indexes = [models.Index(fields=["status", "stage_started_at"], name="ama_round_stage")]

    def __str__(self) -> str:
        return f"AMA round {self.session_id}/{self.index} ({self.status}, {self.verdict})"

    @property
    def seconds_to_answer(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.created_at).total_seconds()


class ImageOcr(models.Model):
    """OCR of one image, read once and reused by every round and session."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="ocr")
    text = models.TextField(blank=True, default="")
    lines = models.JSONField(default=list, blank=True)
    engine = models.CharField(max_length=64)
    milliseconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"OCR of image {self.image_id}"


class CapQARun(models.Model):
    """One `generate_capqa` run over a campaign's accepted captions, with its counts."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="capqa_runs")
    total = models.PositiveIntegerField(default=0, help_text="Captions to process.")
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Captions whose LLM call failed.")
    pairs_kept = models.PositiveIntegerField(default=0)
    pairs_rejected = models.PositiveIntegerField(default=0)
    rejections = models.JSONField(default=dict, blank=True, help_text="reason -> count")
    settings = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"CapQA run {self.pk} ({self.processed}/{self.total})"


class CapQAPair(models.Model):
    """A QA pair an LLM wrote from one accepted caption (PixMo-CapQA)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="capqa_pairs")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="capqa_pairs")
    run = models.ForeignKey(
        CapQARun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )
    source_caption_id = models.PositiveBigIntegerField(
        help_text="The CleanedCaption (or, source 'summary', ImageSummary) id it came from."
    )
    source_kind = models.CharField(max_length=8, default="caption")
    question = models.TextField()
    question_key = models.TextField(help_text="The question's words, lowercased (dedupe key).")
    answer = models.TextField()
    multi_turn = models.BooleanField(default=False)
    topic = models.CharField(max_length=200, blank=True, default="")
    style = models.CharField(max_length=200, blank=True, default="")
    prompt_version = models.CharField(max_length=32)
    model_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "image", "question_key"], name="capqa_unique_question"
            ),
        ]

    def __str__(self) -> str:
        return f"CapQA pair {self.pk}"
