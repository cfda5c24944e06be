"""The published PixMo schemas (PIXMO_SPEC.md §2) as Arrow schemas, and our "full" extras.

The default export of a dataset has exactly the published columns and types, in the
published order; the "full" variant appends our own metadata columns after them, so a
reader of the published columns never sees a difference. `model_service.data` reads
both (it only needs the published columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

POINT64 = pa.struct([("x", pa.float64()), ("y", pa.float64())])

CAP = pa.schema(
    [
        ("image_url", pa.string()),
        ("caption", pa.string()),
        ("transcripts", pa.list_(pa.string())),
    ]
)
POINTS = pa.schema(
    [
        ("image_url", pa.string()),
        ("image_sha256", pa.string()),
        ("points", pa.list_(POINT64)),
        ("count", pa.int64()),
        ("label", pa.string()),
        ("collection_method", pa.string()),
    ]
)
AMA = pa.schema(
    [
        ("image_url", pa.string()),
        ("image_sha256", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
    ]
)
CAPQA = pa.schema(
    [
        ("image_url", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
    ]
)
CLOCKS = pa.schema(
    [
        ("example_id", pa.string()),
        ("watchface_id", pa.string()),
        ("watchface_name", pa.string()),
        ("watch_time", pa.string()),
        ("time_format", pa.string()),
        ("shows_seconds", pa.bool_()),
        ("hour_visible", pa.int32()),
        ("minute_visible", pa.int32()),
        ("second_visible", pa.int32()),
        ("text", pa.string()),
    ]
)

# Our metadata, shared by the human datasets' full variants.
RECORDING = pa.struct(
    [
        ("annotator", pa.string()),  # anonymised: see `annotator_hash`
        ("audio", pa.string()),  # storage key of the recording
        ("duration_seconds", pa.float64()),
        ("mime_type", pa.string()),
        ("transcript", pa.string()),  # the ASR text as it came out
        ("cleaned_caption", pa.string()),
        ("asr_model", pa.string()),
        ("asr_flagged", pa.bool_()),
        ("asr_flags", pa.list_(pa.string())),
        ("caption_flagged", pa.bool_()),
        ("caption_flags", pa.list_(pa.string())),
        ("caption_used_fallback", pa.bool_()),
        ("active_seconds", pa.int64()),
        ("submitted_at", pa.string()),
        ("status", pa.string()),
        # P12: the live guidance's coverage of the seven questions at submit, as JSON
        # text (pipelines.coverage.Coverage.to_dict() plus live_seconds); null when off.
        ("live_coverage", pa.string()),
    ]
)
CAP_FULL_EXTRA = [
    pa.field("image_sha256", pa.string()),
    pa.field("campaign", pa.string()),
    pa.field("summary_model", pa.string()),
    pa.field("summary_flagged", pa.bool_()),
    pa.field("recordings", pa.list_(RECORDING)),
]
POINTS_FULL_EXTRA = [
    pa.field("campaign", pa.string()),
    pa.field("annotator", pa.string()),
    pa.field("seconds", pa.float64()),
    pa.field("image_width", pa.int64()),
    pa.field("image_height", pa.int64()),
    pa.field("submitted_at", pa.string()),
    pa.field("status", pa.string()),
]
# Preference pairs of the AMA loop: not a published PixMo set, our own columns.
PREFERENCES = pa.schema(
    [
        ("image_url", pa.string()),
        ("image_sha256", pa.string()),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("feedback", pa.string()),
    ]
)
AMA_ROUND = pa.struct(
    [
        ("index", pa.int64()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("verdict", pa.string()),
        ("feedback", pa.string()),
        ("caption_source", pa.string()),
        ("caption", pa.string()),
        ("ocr_text", pa.string()),
        ("model_name", pa.string()),
        ("prompt_version", pa.string()),
    ]
)
AMA_FULL_EXTRA = [
    pa.field("campaign", pa.string()),
    pa.field("annotator", pa.string()),
    pa.field("accepted_at", pa.string()),
    pa.field("status", pa.string()),
    pa.field("rounds", pa.list_(AMA_ROUND)),
]
PREFERENCES_FULL_EXTRA = [
    pa.field("campaign", pa.string()),
    pa.field("annotator", pa.string()),
    pa.field("chosen_round", pa.int64()),
    pa.field("rejected_round", pa.int64()),
    pa.field("caption_source", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("prompt_version", pa.string()),
]
CAPQA_FULL_EXTRA = [
    pa.field("image_sha256", pa.string()),
    pa.field("campaign", pa.string()),
    pa.field("multi_turn", pa.bool_()),
    pa.field("topic", pa.string()),
    pa.field("style", pa.string()),
    pa.field("source_kind", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("prompt_version", pa.string()),
    pa.field("created_at", pa.string()),
]


@dataclass(frozen=True)
class DatasetSchema:
    """A dataset's published name and columns, and the columns `--full` adds."""

    name: str  # published name, written as the manifest's "dataset"
    published: pa.Schema
    full_extra: tuple[pa.Field, ...] = ()

    def schema(self, full: bool) -> pa.Schema:
        """The published columns, then (full) our metadata columns."""
        if not full:
            return self.published
        return pa.schema([*self.published, *self.full_extra])


DATASETS: dict[str, DatasetSchema] = {
    "cap": DatasetSchema("pixmo-cap", CAP, tuple(CAP_FULL_EXTRA)),
    "points": DatasetSchema("pixmo-points", POINTS, tuple(POINTS_FULL_EXTRA)),
    "ama": DatasetSchema("pixmo-ask-model-anything", AMA, tuple(AMA_FULL_EXTRA)),
    "capqa": DatasetSchema("pixmo-cap-qa", CAPQA, tuple(CAPQA_FULL_EXTRA)),
    "preferences": DatasetSchema(
        "pixmo-ama-preferences", PREFERENCES, tuple(PREFERENCES_FULL_EXTRA)
    ),
    "clocks": DatasetSchema("pixmo-clocks", CLOCKS),
}
