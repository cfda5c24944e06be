"""PixMo-Cap: recordings, their transcripts, cleaned captions, and per-image summaries.

A recording moves through the pipeline by compare-and-set on `status`:

    stored -> transcribing -> transcribed -> cleaning -> done
                  |                            |
                  +-> flagged (ASR output looks empty or hallucinated; a person looks)
                  +-> failed  (a permanent error; `failure_reason` says which)

A cleaned caption whose LLM edit failed validation falls back to the rule-based text
and is *done* with `CleanedCaption.flagged` set and the reasons in `flag_reasons`: the
caption exists, and the review page shows why it was flagged. Captions holding words
the ASR was unsure of are flagged the same way. A summary whose LLM answers failed keeps
the best input caption (`source_caption`), flagged likewise.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotator_app.catalog.models import Image
from annotator_app.work.models import Assignment, Campaign


class RecordingStatus(models.TextChoices):
    STORED = "stored", "Stored"
    TRANSCRIBING = "transcribing", "Transcribing"
    TRANSCRIBED = "transcribed", "Transcribed"
    CLEANING = "cleaning", "Cleaning"
    DONE = "done", "Done"
    FLAGGED = "flagged", "Flagged for review"
    FAILED = "failed", "Failed"


class Recording(models.Model):
    """The audio an annotator spoke about one image: stored before anything else happens."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="recording"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recordings"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="recordings")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="recordings")
    storage_key = models.CharField(max_length=200, unique=True)
    # A remuxed copy with a duration and a seek index (browser WebM has neither); players
    # get it when set, the original stays as uploaded. Empty: none made (or not needed).
    playback_key = models.CharField(max_length=200, blank=True, default="", db_default="")
    mime_type = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    duration_seconds = models.FloatField(help_text="Measured by decoding the audio on the server.")
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=12, choices=RecordingStatus.choices, default=RecordingStatus.STORED
    )
    # When the current stage was entered; the sweeper re-enqueues what sits too long.
    stage_started_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True, default="")
    # P12 live guidance: which guiding questions the live transcript covered when the
    # annotator submitted (pipelines.coverage.Coverage.to_dict() plus `live_seconds`);
    # null when live guidance was off or had no text. Guidance only: the transcript
    # comes from the full-file ASR.
    live_coverage = models.JSONField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "stage_started_at"], name="recording_stage"),
            models.Index(fields=["annotator", "-created_at"], name="recording_history"),
            models.Index(fields=["campaign", "image"], name="recording_image"),
        ]

    def __str__(self) -> str:
        return f"recording {self.pk} ({self.status})"


class Transcript(models.Model):
    """The ASR stage's output, kept whole: text, segments, words and their scores."""

    recording = models.OneToOneField(Recording, on_delete=models.CASCADE, related_name="transcript")
    text = models.TextField()
    language = models.CharField(max_length=16, default="en")
    # [{start, end, text, avg_logprob, no_speech_prob, compression_ratio}]
    segments = models.JSONField(default=list)
    # [{start, end, word, probability}]
    words = models.JSONField(default=list)
    model_name = models.CharField(max_length=200)
    settings = models.JSONField(default=dict, help_text="The ASR options used.")
    flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"transcript of recording {self.recording_id}"


class CleanedCaption(models.Model):
    """The transcript rewritten without speech artefacts; the raw text stays beside it."""

    transcript = models.OneToOneField(Transcript, on_delete=models.CASCADE, related_name="cleaned")
    rule_text = models.TextField(help_text="The rule-based pre-clean.")
    text = models.TextField(help_text="The caption: the LLM rewrite, or rule_text on fallback.")
    prompt_version = models.CharField(max_length=32)
    model_name = models.CharField(max_length=200)
    llm_attempts = models.PositiveSmallIntegerField(default=0)
    used_fallback = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"cleaned caption of transcript {self.transcript_id}"


class SummaryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImageSummary(models.Model):
    """PixMo's extra caption: one LLM summary of all cleaned transcripts of an image.

    The unique (campaign, image) row is created by whoever first sees every transcript
    cleaned; the row, not a chord, makes the summary happen exactly once.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="summaries")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="summaries")
    status = models.CharField(
        max_length=8, choices=SummaryStatus.choices, default=SummaryStatus.PENDING
    )
    text = models.TextField(blank=True, default="")
    sources = models.ManyToManyField(CleanedCaption, related_name="summaries")
    prompt_version = models.CharField(max_length=32, blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    llm_attempts = models.PositiveSmallIntegerField(default=0)
    # The input caption kept as the summary (no LLM configured, or its answers rejected).
    source_caption = models.ForeignKey(
        CleanedCaption, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    used_fallback = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)
    stage_started_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "image"], name="summary_unique_image"),
        ]
        indexes = [models.Index(fields=["status", "stage_started_at"], name="summary_stage")]

    def __str__(self) -> str:
        return f"summary {self.campaign_id}/{self.image_id} ({self.status})"
