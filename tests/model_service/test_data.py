"""Export readers, packing, collate and the two stage datasets.

Exports are written here with the published columns (PIXMO_SPEC.md §2); the tokenizer
and preprocessor are the real `debug` preset ones (bytes tokenizer, 56 px crops).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from model_service import data
from model_service.preprocess import ImagePreprocessor
from model_service.presets import get_preset
from model_service.tokenizer import MolmoTokenizer, load_tokenizer
from pipelines import molmo_text

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tok_pre() -> tuple[MolmoTokenizer, ImagePreprocessor]:
    cfg = get_preset("debug")
    tokenizer = load_tokenizer(cfg.tokenizer)
    return tokenizer, ImagePreprocessor(cfg.preprocess, tokenizer)


def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


def write_export(
    out: Path, dataset: str, rows: list[dict[str, Any]], fmt: str = "parquet", schema=None
) -> Path:
    """An export dir holding `rows` in one shard."""
    out.mkdir(parents=True, exist_ok=True)
    shard = f"part-0.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / shard)
    else:
        (out / shard).write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"dataset": dataset, "format": fmt, "shards": [shard], "rows": len(rows)}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


POINTS_SCHEMA = pa.schema(
    [
        ("image_url", pa.string()),
        ("image_sha256", pa.string()),
        ("points", pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64())]))),
        ("count", pa.int64()),
        ("label", pa.string()),
        ("collection_method", pa.string()),
    ]
)


@pytest.fixture
def cap_export(tmp_path: Path) -> Path:
    out = tmp_path / "cap"
    rows = []
    for i in range(3):
        _png(out / f"img{i}.png", (40 * i, 90, 200))
        rows.append(
            {
                "image_url": f"img{i}.png",
                "caption": f"Caption number {i}: a blue square on nothing at all.",
                "transcripts": [f"um so this is {i} a blue thing", f"second take {i} blue"],
            }
        )
    return write_export(out, "pixmo-cap", rows)


@pytest.fixture
def points_export(tmp_path: Path) -> Path:
    out = tmp_path / "points"
    sha = hashlib.sha256(_png(out / "tmp.png", (10, 200, 10))).hexdigest()
    (out / "images").mkdir()
    (out / "tmp.png").rename(out / "images" / f"{sha}.png")
    url = "https://example.org/a.png"
    rows = [
        {"image_url": url, "image_sha256": sha, "points": [{"x": 50.0, "y": 20.0},
         {"x": 10.0, "y": 30.0}], "count": 2, "label": "dots", "collection_method": "pointing"},
        {"image_url": url, "image_sha256": sha, "points": [], "count": 0, "label": "cats",
         "collection_method": "pointing"},
        {"image_url": url, "image_sha256": sha, "points": [{"x": 5.0, "y": 5.0}], "count": 1,
         "label": "sun", "collection_method": "counting"},
    ]  # fmt: skip
    return write_export(out, "pixmo-points", rows, schema=POINTS_SCHEMA)


# ----------------------------------------------------------------------------- readers


def test_readers_parquet_and_jsonl_agree(tmp_path: Path) -> None:
    rows = [
        {"image_url": "a.png", "question": "[USER] q1 [ASSISTANT] a1 [USER] q2", "answer": "a2"}
    ]
    _, parquet_rows = data.read_rows(write_export(tmp_path / "p", "pixmo-cap-qa", rows))
    _, jsonl_rows = data.read_rows(write_export(tmp_path / "j", "pixmo-cap-qa", rows, "jsonl"))
    assert parquet_rows == jsonl_rows == rows


def test_points_reader_keeps_published_types(points_export: Path) -> None:
    manifest, rows = data.read_rows(points_export)
    assert manifest.dataset == "pixmo-points" and manifest.rows == 3
    assert rows[0]["points"] == [{"x": 50.0, "y": 20.0}, {"x": 10.0, "y": 30.0}]
    assert rows[1]["points"] == [] and rows[1]["count"] == 0


def test_reader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        data.read_rows(tmp_path)
    bad = write_export(tmp_path / "bad", "pixmo-ask-model-anything", [{"image_url": "x"}])
    with pytest.raises(ValueError, match=r"lack columns \['question', 'answer'\]"):
        data.read_rows(bad)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "manifest.json").write_text('{"dataset": "nope", "format": "parquet"}')
    with pytest.raises(ValueError, match="nope"):
        data.read_manifest(tmp_path / "odd")


def test_image_resolution_order(tmp_path: Path) -> None:
    export = tmp_path / "e"
    _png(export / "local.png", (1, 2, 3))
    sha_file = hashlib.sha256(_png(export / "images" / "x.png", (4, 5, 6))).hexdigest()
    (export / "images" / "x.png").rename(export / "images" / f"{sha_file}.jpg")
    url = "https://example.org/pic.png"
    url_key = hashlib.sha256(url.encode()).hexdigest()
    _png(export / "images" / f"{url_key}.png", (7, 8, 9))
    resolver = data.ImageResolver(export)
    assert resolver.resolve({"image_url": "local.png"}) == export / "local.png"
    assert resolver.resolve({"image_url": (export / "local.png").as_uri()}) == export / "local.png"
    by_sha = resolver.resolve({"image_url": url, "image_sha256": sha_file})
    assert by_sha == export / "images" / f"{sha_file}.jpg"
    assert resolver.resolve({"image_url": url}) == export / "images" / f"{url_key}.png"
    with pytest.raises(FileNotFoundError, match="tried"):
        resolver.resolve({"image_url": "https://example.org/missing.png"})


# ----------------------------------------------------------------------------- packing


@dataclass
class FakeImage:
    crops: np.ndarray
    patch_masks: np.ndarray
    tokens: np.ndarray
    pooled_index: np.ndarray


class CharTokenizer:
    """One id per character (ord), EOS 0: makes token arithmetic readable."""

    eos_id = bos_id = pad_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def fake_image(n_crops: int = 2, n_tokens: int = 4) -> FakeImage:
    return FakeImage(
        crops=np.ones((n_crops, 3, 5), np.float32),
        patch_masks=np.ones((n_crops, 3), np.float32),
        tokens=np.arange(900, 900 + n_tokens),
        pooled_index=np.array([[0, 1], [2, -1]] if n_crops == 2 else [[0, 1]] * n_crops),
    )


def segment(prompt: str, answer: str) -> data.Segment:
    seg = data.Segment()
    seg.add([ord(c) for c in prompt], False)
    seg.add([*(ord(c) for c in answer), 0], True)
    return seg


def test_pack_segments_positions_labels() -> None:
    item = data.pack(CharTokenizer(), fake_image(), [segment("Q:", "ab"), segment("R", "c")], 64)
    # prefix: BOS + 4 image tokens = 5; annotation 1: "Q:ab"+EOS = 5; annotation 2: "Rc"+EOS
    assert item["input_ids"].tolist() == [0, 900, 901, 902, 903, 81, 58, 97, 98, 0, 82, 99, 0]
    assert item["segment_ids"].tolist() == [0] * 5 + [1] * 5 + [2] * 3
    assert item["position_ids"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7]
    ign = data.IGNORE_INDEX
    # ":" predicts "a", "a" predicts "b", "b" predicts EOS; "R" predicts "c", "c" EOS.
    assert item["labels"].tolist() == [ign] * 6 + [97, 98, 0, ign, 99, 0, ign]
    # pooled_index shifts by one for the BOS; -1 stays -1.
    assert item["image_input_idx"].tolist() == [[1, 2], [3, -1]]


def test_truncation_keeps_whole_annotations_that_fit() -> None:
    long, short = segment("Q", "x" * 20), segment("R", "y")
    # prefix 5, room 10: the long one (22) is skipped, the short one (3) kept.
    item = data.pack(CharTokenizer(), fake_image(), [long, short], seq_len=15)
    assert len(item["input_ids"]) == 8 and set(item["segment_ids"][5:]) == {1}
    # Nothing fits whole: the first is cut to the room left, and still has labels.
    item = data.pack(CharTokenizer(), fake_image(), [long], seq_len=12)
    assert len(item["input_ids"]) == 12
    assert item["labels"].tolist()[5:] == [ord("x")] * 6 + [data.IGNORE_INDEX]
    with pytest.raises(ValueError, match="cannot hold the image"):
        data.pack(CharTokenizer(), fake_image(), [short], seq_len=5)


def test_collate_pads_text_and_crops() -> None:
    a = data.pack(CharTokenizer(), fake_image(2), [segment("Q", "ab")], 64)
    b = data.pack(CharTokenizer(), fake_image(1, 2), [segment("Q", "a")], 64)
    batch = data.collate([a, b], pad_id=7)
    assert batch["input_ids"].shape == (2, 9) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][1, -3:].tolist() == [7, 7, 7]
    assert batch["segment_ids"][1, -3:].tolist() == [-1, -1, -1]
    assert batch["labels"][1, -3:].tolist() == [-100] * 3
    assert batch["images"].shape == (2, 2, 3, 5)
    assert batch["images"][1, 1].abs().sum() == 0
    assert batch["image_masks"][1, 1].tolist() == [-1.0] * 3
    assert batch["image_input_idx"][1, 1].tolist() == [-1, -1]
    assert data.collate([a], pad_to=20)["input_ids"].shape == (1, 20)


# ----------------------------------------------------------------------------- datasets


def _segments_text(item: dict[str, np.ndarray], tokenizer: MolmoTokenizer) -> list[str]:
    ids, seg = item["input_ids"], item["segment_ids"]
    return [tokenizer.decode(ids[seg == k].tolist()) for k in range(1, int(seg.max()) + 1)]


def _answer_text(item: dict[str, np.ndarray], tokenizer: MolmoTokenizer) -> list[str]:
    labels = item["labels"]
    return [tokenizer.decode(labels[(item["segment_ids"] == k) & (labels >= 0)].tolist())
            for k in range(1, int(item["segment_ids"].max()) + 1)]  # fmt: skip


def test_caption_item_packs_caption_and_one_transcript(cap_export: Path, tok_pre) -> None:
    tokenizer, pre = tok_pre
    ds = data.CaptionDataset([cap_export], tokenizer, pre, seq_len=2048, seed=1)
    assert len(ds) == 3
    item = ds[2]
    caption, transcript = _segments_text(item, tokenizer)
    row = data.read_rows(cap_export)[1][2]
    # Replay the item's generator: transcript pick, then the caption's and transcript's
    # prompt draws, in the order the dataset makes them.
    rng = data.example_rng(1, 2, 0)
    picked = row["transcripts"][int(rng.integers(2))]
    cap_prompt = molmo_text.caption_prompt("long_caption", len(row["caption"]), rng)
    tr_prompt = molmo_text.caption_prompt("transcript", len(picked), rng)
    assert caption == f"{cap_prompt} {row['caption']}"
    assert transcript == f"{tr_prompt} {picked}"
    assert _answer_text(item, tokenizer) == [f" {row['caption']}", f" {picked}"]
    # The image prefix comes first, once, as segment 0 and carries no loss.
    n_prefix = 1 + len(pre(data.load_image(cap_export / "img2.png")).tokens)
    assert (item["segment_ids"][:n_prefix] == 0).all()
    assert (item["segment_ids"][n_prefix:] > 0).all()
    assert (item["labels"][:n_prefix] == -100).all()


def test_determinism_and_epochs(cap_export: Path, tok_pre) -> None:
    tokenizer, pre = tok_pre
    first = data.CaptionDataset([cap_export], tokenizer, pre, seq_len=2048, seed=5)
    second = data.CaptionDataset([cap_export], tokenizer, pre, seq_len=2048, seed=5)
    for index in range(3):
        a, b = first.get(index, 0), second.get(index, 0)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    epoch0 = [_segments_text(first.get(i, 0), tokenizer) for i in range(3)]
    first.set_epoch(1)
    epoch1 = [_segments_text(first[i], tokenizer) for i in range(3)]
    assert epoch0 != epoch1
    # Same image, same texts: only the random choices moved.
    assert [s[0].split(":", 1)[1] for s in epoch0] == [s[0].split(":", 1)[1] for s in epoch1]


def test_sft_points_item(points_export: Path, tok_pre) -> None:
    tokenizer, pre = tok_pre
    ds = data.SFTDataset([points_export], tokenizer, pre, seq_len=4096, seed=0)
    assert len(ds) == 1
    texts = sorted(_segments_text(ds[0], tokenizer))
    answers = sorted(_answer_text(ds[0], tokenizer))
    assert answers == sorted(
        [
            ' <points x1="10.0" y1="30.0" x2="50.0" y2="20.0" alt="dots">dots</points>',
            " There are none.",
            ' Counting the <point x="5.0" y="5.0" alt="sun">sun</point> shows a total of 1.',
        ]
    )
    assert all(t.startswith(" User: ") and " Assistant: " in t for t in texts)
    assert any(q in "".join(texts) for q in ("How many sun are there?", "Count the sun"))


def test_sft_capqa_multi_turn_and_style(tmp_path: Path, tok_pre) -> None:
    tokenizer, pre = tok_pre
    out = tmp_path / "capqa"
    _png(out / "a.png", (9, 9, 9))
    rows = [
        {"image_url": "a.png", "question": "[USER] q1 [ASSISTANT] a1 [USER] q2", "answer": "a2"}
    ]
    write_export(out, "pixmo-cap-qa", rows, "jsonl")
    ds = data.SFTDataset([(out, "style")], tokenizer, pre, seq_len=4096)
    item = ds[0]
    assert _segments_text(item, tokenizer) == [
        " User: style: q1 Assistant: a1 User: style: q2 Assistant: a2"
    ]
    assert _answer_text(item, tokenizer) == [" a1 a2"]


def test_mixture_weights_by_hand() -> None:
    sizes = {"a": 100, "b": 400, "c": 9}
    groups = {"a": "human", "b": "human", "c": "synthetic"}
    # no rates: sqrt sizes 10, 20, 3 over 33
    w = data.mixture_weights(sizes, groups, {})
    assert w == pytest.approx({"a": 10 / 33, "b": 20 / 33, "c": 3 / 33})
    # group rates 0.6/0.4; inside human sqrt split 1:2 -> 0.2, 0.4
    w = data.mixture_weights(sizes, groups, {"human": 0.6, "synthetic": 0.4})
    assert w == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.4})
    # a named source keeps its own rate; the rest of its group shares the group's rate
    w = data.mixture_weights(sizes, groups, {"a": 1.0, "human": 2.0, "synthetic": 1.0})
    assert w == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})
    with pytest.raises(ValueError, match="no rate"):
        data.mixture_weights(sizes, groups, {"human": 1.0})


def test_sft_mixture_follows_rates(tmp_path: Path, points_export: Path, tok_pre) -> None:
    tokenizer, pre = tok_pre
    out = tmp_path / "ama"
    _png(out / "a.png", (1, 1, 1))
    write_export(out, "pixmo-ask-model-anything", [
        {"image_url": "a.png", "image_sha256": "", "question": "Why?", "answer": "Because."}
    ])  # fmt: skip
    ds = data.SFTDataset(
        [points_export, out], tokenizer, pre, seq_len=4096, rates={"pixmo-points": 0.0,
        "pixmo-ask-model-anything": 1.0}, length=4,
    )  # fmt: skip
    assert all(_answer_text(ds[i], tokenizer) == [" Because."] for i in range(4))
    with pytest.raises(ValueError, match="caption stage"):
        data.make_dataset("caption", [out], tokenizer, pre, 4096)


def test_model_takes_the_collated_batch(cap_export: Path, tok_pre) -> None:
    """The batch dict drives the real model: logits cover every position of every item."""
    from model_service.model import MolmoModel

    tokenizer, pre = tok_pre
    torch.manual_seed(0)
    model = MolmoModel(get_preset("debug")).eval()
    ds = data.CaptionDataset([cap_export], tokenizer, pre, seq_len=2048)
    batch = data.collate([ds[0], ds[1]], pad_id=tokenizer.pad_id)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"})
    assert logits.shape == (*batch["input_ids"].shape, model.cfg.llm.n_logits)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())
    assert torch.isfinite(loss)
