"""Training data for Molmo: export readers, prompt formats, packing, datasets, collate.

Reading order: exports (manifest + shards -> rows grouped per image) -> text formats
(caption prompts, chat turns, pointing/counting/clock answers) -> packing (one image,
several annotations, one sequence) -> torch Datasets for the two stages -> `collate`.

Every random choice (which transcript, length-hint noise, question wording, mixture
draw) comes from `example_rng(seed, index, epoch)`, so an item is a pure function of
those three numbers and the data: resuming, sharding over ranks or reordering workers
never changes what a given step sees.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageOps

from pipelines import molmo_text

IGNORE_INDEX = -100

# Manifest "dataset" name -> the kind of annotation its rows hold.
DATASET_KINDS: dict[str, str] = {
    "pixmo-cap": "cap",
    "pixmo-points": "points",
    "pixmo-points-eval": "points",
    "pixmo-count": "count",
    "pixmo-ask-model-anything": "ama",
    "pixmo-cap-qa": "capqa",
    "pixmo-clocks": "clocks",
}
# Columns each kind needs (a subset of the published ones, PIXMO_SPEC.md §2).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "cap": ("image_url", "caption", "transcripts"),
    "points": ("image_url", "points", "label", "collection_method"),
    "count": ("image_url", "points", "count", "label"),
    "ama": ("image_url", "question", "answer"),
    "capqa": ("image_url", "question", "answer"),
    "clocks": ("example_id", "hour_visible", "minute_visible"),
}
# Mixture groups of the paper (§5); datasets not listed here count as "academic".
DATASET_GROUPS: dict[str, str] = {
    "pixmo-points": "human",
    "pixmo-ask-model-anything": "human",
    "pixmo-cap": "human",
    "pixmo-point-qa": "human",
    "pixmo-count": "synthetic",
    "pixmo-cap-qa": "synthetic",
    "pixmo-clocks": "synthetic",
    "pixmo-docs": "synthetic",
}
PAPER_GROUP_RATES: dict[str, float] = {"human": 38.1, "synthetic": 31.6, "academic": 30.3}


class TokenizerLike(Protocol):
    """The part of `model_service.tokenizer.MolmoTokenizer` this module uses."""

    @property
    def eos_id(self) -> int: ...

    @property
    def bos_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...


class ImageInputsLike(Protocol):
    """`model_service.preprocess.ImageInputs` (CONTRACT.md §Preprocessor)."""

    crops: np.ndarray
    patch_masks: np.ndarray
    tokens: np.ndarray
    pooled_index: np.ndarray


class PreprocessorLike(Protocol):
    """`model_service.preprocess.ImagePreprocessor`."""

    def __call__(self, image: np.ndarray) -> Any: ...


def example_rng(seed: int, index: int, epoch: int) -> np.random.Generator:
    """The one generator for item `index` of `epoch`; all item randomness comes from it."""
    return np.random.default_rng([seed, index, epoch])


# --------------------------------------------------------------------------- exports


@dataclass(frozen=True)
class Manifest:
    """manifest.json of an export dir (CONTRACT.md §Exports)."""

    dataset: str
    format: str
    shards: list[str]
    rows: int


def read_manifest(export_dir: str | Path) -> Manifest:
    """Read and check ``manifest.json``; errors name the export dir and the bad field."""
    path = Path(export_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest.json; is this an export dir?")
    raw = json.loads(path.read_text())
    manifest = Manifest(
        dataset=str(raw.get("dataset", "")),
        format=str(raw.get("format", "")),
        shards=[str(s) for s in raw.get("shards", [])],
        rows=int(raw.get("rows", 0)),
    )
    if manifest.dataset not in DATASET_KINDS:
        raise ValueError(f"{path}: dataset {manifest.dataset!r} not in {sorted(DATASET_KINDS)}")
    if manifest.format not in ("parquet", "jsonl"):
        raise ValueError(f"{path}: format {manifest.format!r} is not 'parquet' or 'jsonl'")
    return manifest


def read_rows(export_dir: str | Path) -> tuple[Manifest, list[dict[str, Any]]]:
    """All rows of an export, shard after shard, as plain dicts."""
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    rows: list[dict[str, Any]] = []
    for shard in manifest.shards:
        path = export_dir / shard
        if manifest.format == "parquet":
            rows.extend(pq.read_table(path).to_pylist())
        else:
            with path.open(encoding="utf-8") as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
    kind = DATASET_KINDS[manifest.dataset]
    if rows:
        missing = [c for c in REQUIRED_COLUMNS[kind] if c not in rows[0]]
        if missing:
            raise ValueError(f"{export_dir}: {manifest.dataset} rows lack columns {missing}")
    return manifest, rows


class ImageResolver:
    """Finds the image file of a row (CONTRACT.md §Exports, resolution order).

    1. ``image_url`` as a local path (relative to the export dir) or a file:// URL;
    2. ``images/<image_sha256>.<ext>``; 3. ``images/<sha256 of image_url>.<ext>``;
    4. ``images/<example_id>.<ext>`` (pixmo-clocks, whose schema has no image column).
    """

    def __init__(self, export_dir: str | Path) -> None:
        self.export_dir = Path(export_dir)
        self._by_stem: dict[str, Path] | None = None

    def _images(self) -> dict[str, Path]:
        # One directory listing instead of a glob per row: exports hold 100k+ images.
        if self._by_stem is None:
            folder = self.export_dir / "images"
            entries = sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []
            self._by_stem = {}
            for entry in entries:
                self._by_stem.setdefault(entry.name.rsplit(".", 1)[0], Path(entry.path))
        return self._by_stem

    def resolve(self, row: Mapping[str, Any]) -> Path:
        """Path of the row's image; FileNotFoundError lists what was tried."""
        tried: list[str] = []
        url = row.get("image_url")
        if url:
            parsed = urlparse(url)
            local = None
            if parsed.scheme == "file":
                local = Path(unquote(parsed.path))
            elif "://" not in url:
                local = self.export_dir / url
            if local is not None:
                if local.is_file():
                    return local
                tried.append(str(local))
        keys = [row.get("image_sha256"), url and hashlib.sha256(url.encode()).hexdigest()]
        keys.append(row.get("example_id"))
        for key in keys:
            if key and str(key) in self._images():
                return self._images()[str(key)]
            if key:
                tried.append(f"images/{key}.*")
        raise FileNotFoundError(f"{self.export_dir}: no image for row; tried {tried}")


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]; EXIF rotation applied so points match what annotators saw."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)


@dataclass
class ImageGroup:
    """All rows of one export that share an image."""

    path: Path
    rows: list[dict[str, Any]]


@dataclass
class Source:
    """One export as a training source: its rows grouped per image."""

    name: str  # the manifest's dataset name, e.g. "pixmo-points"
    kind: str  # DATASET_KINDS value
    groups: list[ImageGroup]
    style: str | None = None  # academic style prefix, e.g. "vqa2"
    group: str = "academic"  # mixture group


def load_source(export_dir: str | Path, style: str | None = None) -> Source:
    """Read an export and group its rows by image (first-seen order, so it is stable)."""
    manifest, rows = read_rows(export_dir)
    resolver = ImageResolver(export_dir)
    by_path: dict[Path, ImageGroup] = {}
    for row in rows:
        path = resolver.resolve(row)
        by_path.setdefault(path, ImageGroup(path=path, rows=[])).rows.append(row)
    return Source(
        name=manifest.dataset,
        kind=DATASET_KINDS[manifest.dataset],
        groups=list(by_path.values()),
        style=style,
        group=DATASET_GROUPS.get(manifest.dataset, "academic"),
    )


# --------------------------------------------------------------------------- text formats


POINT_QUESTIONS = ("Point to {label}.", "Point to all {label} in the image.", "Where is {label}?")
COUNT_QUESTIONS = ("How many {label} are there?", "Count the {label} in the image.")
CAPTION_QUESTIONS = ("Describe this image in detail.", "Write a long caption for this image.")


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _xy(points: Sequence[Mapping[str, float]] | None) -> list[molmo_text.Point]:
    return [(float(p["x"]), float(p["y"])) for p in points or []]


def row_turns(
    kind: str, row: Mapping[str, Any], rng: np.random.Generator, image_size: tuple[int, int]
) -> list[tuple[str, str]]:
    """(question, answer) turns of one SFT annotation; `image_size` is (width, height)."""
    if kind in ("points", "count"):
        label = str(row["label"])
        points = _xy(row["points"])
        if kind == "count":  # pixmo-count stores pixels
            points = [molmo_text.pixels_to_percent(x, y, *image_size) for x, y in points]
        if kind == "count" or row.get("collection_method") == "counting":
            question = _pick(COUNT_QUESTIONS, rng).format(label=label)
            return [(question, molmo_text.count_answer(points, label))]
        question = _pick(POINT_QUESTIONS, rng).format(label=label)
        return [(question, molmo_text.points_to_text(points, label))]
    if kind == "ama":
        return [(str(row["question"]), str(row["answer"]))]
    if kind == "capqa":
        return molmo_text.parse_capqa(str(row["question"]), str(row["answer"]))
    if kind == "cap":
        return [(_pick(CAPTION_QUESTIONS, rng), str(row["caption"]))]
    if kind == "clocks":
        return [(molmo_text.CLOCK_QUESTION, clock_target(row))]
    raise ValueError(f"unknown annotation kind {kind!r}")


def clock_target(row: Mapping[str, Any]) -> str:
    """The answer for a pixmo-clocks row, from the visible hour/minute (-1 = hidden)."""
    hour, minute = int(row["hour_visible"]), int(row["minute_visible"])
    if hour < 0 or minute < 0:
        return molmo_text.CLOCK_HIDDEN_ANSWER
    return molmo_text.clock_answer(hour, minute)


# --------------------------------------------------------------------------- packing


@dataclass
class Segment:
    """One annotation's tokens; `target[i]` marks answer tokens (they get a loss)."""

    tokens: list[int] = field(default_factory=list)
    target: list[bool] = field(default_factory=list)

    def add(self, ids: Sequence[int], is_answer: bool) -> None:
        """Append tokens, all answer tokens or all prompt tokens."""
        self.tokens.extend(ids)
        self.target.extend([is_answer] * len(ids))


def turns_segment(
    tokenizer: TokenizerLike, turns: Sequence[tuple[str, str]], style: str | None = None
) -> Segment:
    """Chat segment: `` User: q Assistant:`` then `` a`` + EOS, for every turn."""
    segment = Segment()
    for question, answer in turns:
        segment.add(tokenizer.encode(molmo_text.chat_prompt(question, style)), False)
        segment.add([*tokenizer.encode(" " + answer), tokenizer.eos_id], True)
    return segment


def caption_segment(tokenizer: TokenizerLike, prompt: str, text: str) -> Segment:
    """Caption-stage segment: the bare style/length prompt, then the text + EOS."""
    segment = Segment()
    segment.add(tokenizer.encode(prompt), False)
    segment.add([*tokenizer.encode(" " + text), tokenizer.eos_id], True)
    return segment


def fit_segments(prefix_len: int, segments: Sequence[Segment], seq_len: int) -> list[Segment]:
    """Keep whole segments, in order, while they fit in `seq_len`; skip those that do not.

    When not even the first fits it is cut at the end, so every image still trains on
    something; a cut segment that keeps no answer token is dropped.
    """
    room = seq_len - prefix_len
    if room <= 0:
        raise ValueError(f"seq_len {seq_len} cannot hold the image prefix of {prefix_len} tokens")
    kept: list[Segment] = []
    for segment in segments:
        if len(segment.tokens) <= room:
            kept.append(segment)
            room -= len(segment.tokens)
    if not kept and segments:
        first = segments[0]
        cut = Segment(first.tokens[:room], first.target[:room])
        if any(cut.target[1:]):
            kept.append(cut)
    return kept


def pack(
    tokenizer: TokenizerLike, image: ImageInputsLike, segments: Sequence[Segment], seq_len: int
) -> dict[str, np.ndarray]:
    """One training item: BOS + image tokens (segment 0) then each annotation (1, 2, ...).

    Positions restart after the image for every annotation; labels[i] is the token at
    i + 1 when that token is an answer token of the same annotation, else -100.
    """
    prefix = [tokenizer.bos_id, *(int(t) for t in image.tokens)]
    kept = fit_segments(len(prefix), segments, seq_len)
    ids, pos = list(prefix), list(range(len(prefix)))
    seg, labels = [0] * len(prefix), [IGNORE_INDEX] * len(prefix)
    for k, segment in enumerate(kept, start=1):
        n = len(segment.tokens)
        ids.extend(segment.tokens)
        pos.extend(range(len(prefix), len(prefix) + n))
        seg.extend([k] * n)
        labels.extend(
            segment.tokens[i + 1] if i + 1 < n and segment.target[i + 1] else IGNORE_INDEX
            for i in range(n)
        )
    pooled = np.asarray(image.pooled_index, dtype=np.int64)
    # pooled_index points into image.tokens; the BOS shifts every image token by one.
    input_idx = np.where(pooled >= 0, pooled + 1, -1)
    return {
        "input_ids": np.asarray(ids, dtype=np.int64),
        "position_ids": np.asarray(pos, dtype=np.int64),
        "segment_ids": np.asarray(seg, dtype=np.int64),
        "labels": np.asarray(labels, dtype=np.int64),
        "images": np.asarray(image.crops, dtype=np.float32),
        "image_masks": np.asarray(image.patch_masks, dtype=np.float32),
        "image_input_idx": input_idx,
    }


def build_prompt(
    tokenizer: TokenizerLike, preprocessor: PreprocessorLike, image: np.ndarray, prompt: str
) -> dict[str, np.ndarray]:
    """An inference item: image prefix + one prompt segment, no labels (for `generate`)."""
    inputs = preprocessor(image)
    segment = Segment()
    segment.add(tokenizer.encode(prompt), False)
    length = 1 + len(inputs.tokens) + len(segment.tokens)
    return pack(tokenizer, inputs, [segment], seq_len=length)


def collate(
    items: Sequence[Mapping[str, np.ndarray]], pad_id: int = 0, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Right-pad items into the batch dict of CONTRACT.md §Batch.

    Text is padded to the longest item (or `pad_to`); padding has segment -1, position 0
    and label -100. Crops are zero-padded to the most crops in the batch, with mask -1
    and input index -1.
    """
    if not items:
        raise ValueError("collate needs at least one item")
    length = max(len(item["input_ids"]) for item in items)
    if pad_to is not None:
        if pad_to < length:
            raise ValueError(f"pad_to {pad_to} < longest item {length}")
        length = pad_to
    fills = {"input_ids": pad_id, "position_ids": 0, "segment_ids": -1, "labels": IGNORE_INDEX}
    batch: dict[str, torch.Tensor] = {}
    for key, fill in fills.items():
        out = np.full((len(items), length), fill, dtype=np.int64)
        for b, item in enumerate(items):
            out[b, : len(item[key])] = item[key]
        batch[key] = torch.from_numpy(out)
    if all("images" in item for item in items):
        n_crops = max(item["images"].shape[0] for item in items)
        first = items[0]
        images = np.zeros((len(items), n_crops, *first["images"].shape[1:]), np.float32)
        masks = np.full((len(items), n_crops, first["image_masks"].shape[1]), -1.0, np.float32)
        index = np.full((len(items), n_crops, first["image_input_idx"].shape[1]), -1, np.int64)
        for b, item in enumerate(items):
            n = item["images"].shape[0]
            images[b, :n] = item["images"]
            masks[b, :n] = item["image_masks"]
            index[b, :n] = item["image_input_idx"]
        batch["images"] = torch.from_numpy(images)
        batch["image_masks"] = torch.from_numpy(masks)
        batch["image_input_idx"] = torch.from_numpy(index)
    return batch


# --------------------------------------------------------------------------- datasets


class _EpochDataset(torch.utils.data.Dataset[dict[str, np.ndarray]]):
    """An epoch counter: `__getitem__(i)` is `get(i, self.epoch)`."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness `__getitem__` uses (call before iterating)."""
        self.epoch = epoch

    def get(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        """Item `index` of `epoch`: a pure function of (data, seed, index, epoch)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.get(index, self.epoch)


class ExportDataset(_EpochDataset):
    """One export as packed items, one item per image with all its annotations.

    Args:
        export: export dir (manifest.json + shards).
        tokenizer, preprocessor: from `model_service.tokenizer` / `model_service.preprocess`.
        seq_len: packed length in tokens, image tokens included.
        seed: with (index, epoch) seeds each item's generator.
        stage: "caption" (pixmo-cap only: caption + one random transcript, bare
            style/length prompts) or "sft" (chat turns).
        style: academic style prefix for SFT questions, e.g. "vqa2".
        no_length_prob, length_noise_std: caption-prompt options (0.1, 25 chars).
    """

    def __init__(
        self,
        export: str | Path,
        tokenizer: TokenizerLike,
        preprocessor: PreprocessorLike,
        seq_len: int,
        seed: int = 0,
        stage: str = "sft",
        style: str | None = None,
        no_length_prob: float = 0.1,
        length_noise_std: float = 25.0,
    ) -> None:
        if stage not in ("caption", "sft"):
            raise ValueError(f"stage must be 'caption' or 'sft', got {stage!r}")
        self.source = load_source(export, style=style)
        if stage == "caption" and self.source.kind != "cap":
            raise ValueError(f"{export}: caption stage reads pixmo-cap, got {self.source.name}")
        self.tokenizer, self.preprocessor = tokenizer, preprocessor
        self.seq_len, self.seed, self.stage = seq_len, seed, stage
        self.no_length_prob, self.length_noise_std = no_length_prob, length_noise_std

    @property
    def name(self) -> str:
        """The manifest's dataset name (the key of mixture rates)."""
        return self.source.name

    def __len__(self) -> int:
        return len(self.source.groups)

    def get(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        return self.build(index, example_rng(self.seed, index, epoch))

    def build(self, group_index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Pack image `group_index` using `rng` for every random choice."""
        group = self.source.groups[group_index]
        pixels = load_image(group.path)
        if self.stage == "caption":
            segments = self.caption_segments(group.rows[0], rng)
        else:
            size = (pixels.shape[1], pixels.shape[0])
            segments = [
                turns_segment(
                    self.tokenizer, row_turns(self.source.kind, row, rng, size), self.source.style
                )
                for row in group.rows
            ]
            # Shuffled so the annotations truncation drops differ from epoch to epoch.
            order = rng.permutation(len(segments))
            segments = [segments[i] for i in order if segments[i].tokens]
        return pack(self.tokenizer, self.preprocessor(pixels), segments, self.seq_len)

    def caption_segments(self, row: Mapping[str, Any], rng: np.random.Generator) -> list[Segment]:
        """The LLM caption, then one transcript chosen by `rng` (either may be absent)."""
        targets = [("long_caption", str(row.get("caption") or ""))]
        transcripts = [t for t in row.get("transcripts") or [] if t]
        if transcripts:
            targets.append(("transcript", transcripts[int(rng.integers(len(transcripts)))]))
        out = []
        for style, text in targets:
            if text:
                prompt = molmo_text.caption_prompt(
                    style, len(text), rng, self.no_length_prob, self.length_noise_std
                )
                out.append(caption_segment(self.tokenizer, prompt, text))
        return out


class CaptionDataset(_EpochDataset):
    """Stage 1: the images of one or more pixmo-cap exports, concatenated in order.

    Same arguments as `ExportDataset` (with `exports`, a list of dirs); item `index`
    is seeded by (seed, index, epoch) with the concatenated index.
    """

    def __init__(
        self,
        exports: Sequence[str | Path],
        tokenizer: TokenizerLike,
        preprocessor: PreprocessorLike,
        seq_len: int,
        seed: int = 0,
        no_length_prob: float = 0.1,
        length_noise_std: float = 25.0,
    ) -> None:
        self.parts = [
            ExportDataset(
                e,
                tokenizer,
                preprocessor,
                seq_len,
                seed,
                "caption",
                None,
                no_length_prob,
                length_noise_std,
            )
            for e in exports
        ]
        self.offsets = np.cumsum([0, *(len(p) for p in self.parts)])
        self.seed = seed

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        local = index - int(self.offsets[part])
        return self.parts[part].build(local, example_rng(self.seed, index, epoch))


def mixture_weights(
    sizes: Mapping[str, int], groups: Mapping[str, str], rates: Mapping[str, float]
) -> dict[str, float]:
    """Sampling probability of each source (sums to 1).

    A source named in `rates` gets that rate; otherwise its group's rate is shared by the
    group's remaining sources in proportion to sqrt(size). With no rates at all every
    source is weighted by sqrt(size). A source with neither raises ValueError.
    """
    if not rates:
        raw = {name: math.sqrt(size) for name, size in sizes.items()}
    else:
        raw = {name: float(rates[name]) for name in sizes if name in rates}
        pooled = [name for name in sizes if name not in rates]
        for name in pooled:
            if groups[name] not in rates:
                raise ValueError(f"mixture: no rate for source {name!r} or its group")
        for group in {groups[name] for name in pooled}:
            members = [name for name in pooled if groups[name] == group]
            total = sum(math.sqrt(sizes[name]) for name in members)
            for name in members:
                share = math.sqrt(sizes[name]) / total if total else 1.0 / len(members)
                raw[name] = rates[group] * share
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"mixture: rates sum to {total}")
    return {name: raw[name] / total for name in sizes}


class SFTDataset(_EpochDataset):
    """Stage 2: a sampled mixture of SFT exports.

    Args:
        exports: export dirs, or (export dir, academic style prefix) pairs; one per dataset.
        tokenizer, preprocessor, seq_len, seed: as for `ExportDataset`.
        rates: source name (manifest dataset) or group name ("human", "synthetic",
            "academic") -> rate; see `mixture_weights`. Empty = sqrt(size) over all.
        length: items per epoch (default: the number of images over all sources).

    Item `index` draws its source by the mixture weights and an image uniformly inside
    it (with replacement), then builds it, all from `example_rng(seed, index, epoch)`.
    `parts` holds one `ExportDataset` per export for callers that draw the mixture
    themselves.
    """

    def __init__(
        self,
        exports: Sequence[str | Path | tuple[str | Path, str]],
        tokenizer: TokenizerLike,
        preprocessor: PreprocessorLike,
        seq_len: int,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        length: int | None = None,
    ) -> None:
        self.parts: list[ExportDataset] = []
        for export in exports:
            path, style = export if isinstance(export, tuple) else (export, None)
            self.parts.append(
                ExportDataset(path, tokenizer, preprocessor, seq_len, seed, "sft", style)
            )
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"SFT mixture: one export per dataset, got {names}")
        weights = mixture_weights(
            {p.name: len(p) for p in self.parts},
            {p.name: p.source.group for p in self.parts},
            rates or {},
        )
        self.weights = np.asarray([weights[p.name] for p in self.parts])
        self.length = length if length is not None else sum(len(p) for p in self.parts)
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def get(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        rng = example_rng(self.seed, index, epoch)
        part = self.parts[int(rng.choice(len(self.parts), p=self.weights))]
        return part.build(int(rng.integers(len(part))), rng)


def make_dataset(
    stage: str,
    exports: Sequence[str | Path],
    tokenizer: TokenizerLike,
    preprocessor: PreprocessorLike,
    seq_len: int,
    seed: int = 0,
    rates: Mapping[str, float] | None = None,
) -> CaptionDataset | SFTDataset:
    """The dataset of a training stage ("caption" or "sft")."""
    if stage == "caption":
        if rates:
            raise ValueError("caption stage: mixture rates do not apply")
        return CaptionDataset(exports, tokenizer, preprocessor, seq_len, seed)
    if stage == "sft":
        return SFTDataset(exports, tokenizer, preprocessor, seq_len, seed, rates)
    raise ValueError(f"stage must be 'caption' or 'sft', got {stage!r}")
