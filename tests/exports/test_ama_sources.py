"""AMA, preference pairs and CapQA (P6's data) through the export engine: published
columns, what counts as accepted, every round in the full variant, hostile text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from model_service import data as molmo_data
from tests.exports import helpers
from tests.exports.test_engine import HOSTILE, run, table

pytestmark = pytest.mark.django_db

PUBLISHED = {
    "ama": pa.schema(
        [
            ("image_url", pa.string()),
            ("image_sha256", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
        ]
    ),
    "capqa": pa.schema(
        [("image_url", pa.string()), ("question", pa.string()), ("answer", pa.string())]
    ),
}


@pytest.fixture
def ama_data() -> dict[str, object]:
    camp = helpers.campaign("ama")
    image = helpers.stored_image((5, 6, 7))
    helpers.ama_session(
        camp,
        image,
        "What does the sign say?",
        [
            ("It says GO.", "rejected", "The sign is red; read it again."),
            ("It says <b>STOP</b>.", "rejected", HOSTILE),
            ("The sign says STOP.", "accepted", ""),
        ],
    )
    helpers.ama_session(camp, image, HOSTILE, [("An answer with 🙂.", "accepted", "")])
    helpers.ama_session(
        camp, image, "Awaiting review?", [("Yes.", "accepted", "")], status="submitted"
    )
    helpers.ama_session(
        camp, image, "Rejected by a reviewer?", [("No.", "accepted", "")], status="rejected"
    )
    return {"campaign": camp, "image": image}


def test_ama_export_published_columns_and_accepted_pairs(ama_data, tmp_path: Path) -> None:
    run("ama", tmp_path / "ama")
    data = table(tmp_path / "ama")
    assert data.schema.equals(PUBLISHED["ama"], check_metadata=False)
    rows = data.to_pylist()
    assert [(r["question"], r["answer"]) for r in rows] == [
        ("What does the sign say?", "The sign says STOP."),
        (HOSTILE, "An answer with 🙂."),
    ]
    assert rows[0]["image_sha256"] == ama_data["image"].sha256  # type: ignore[attr-defined]
    source = molmo_data.load_source(tmp_path / "ama")
    assert source.kind == "ama" and len(source.groups[0].rows) == 2
    run("ama", tmp_path / "all", status="all")
    questions = [r["question"] for r in table(tmp_path / "all").to_pylist()]
    assert "Awaiting review?" in questions and "Rejected by a reviewer?" not in questions


def test_ama_full_keeps_every_round(ama_data, tmp_path: Path) -> None:
    run("ama", tmp_path / "full", full=True)
    first = table(tmp_path / "full").to_pylist()[0]
    assert [r["verdict"] for r in first["rounds"]] == ["rejected", "rejected", "accepted"]
    assert first["rounds"][1]["feedback"] == HOSTILE
    assert first["rounds"][0]["ocr_text"] == "STOP" and len(first["annotator"]) == 16


def test_preference_pairs_chosen_against_each_rejected_answer(ama_data, tmp_path: Path) -> None:
    run("preferences", tmp_path / "prefs", format="jsonl")
    manifest = json.loads((tmp_path / "prefs" / "manifest.json").read_text())
    assert manifest["dataset"] == "pixmo-ama-preferences"
    rows = [
        json.loads(line)
        for line in (tmp_path / "prefs" / manifest["shards"][0]).read_text().splitlines()
    ]
    assert [(r["chosen"], r["rejected"], r["feedback"]) for r in rows] == [
        ("The sign says STOP.", "It says GO.", "The sign is red; read it again."),
        ("The sign says STOP.", "It says <b>STOP</b>.", HOSTILE),
    ]
    assert list(rows[0]) == [
        "image_url",
        "image_sha256",
        "question",
        "chosen",
        "rejected",
        "feedback",
    ]


def test_capqa_export_published_columns(tmp_path: Path) -> None:
    camp = helpers.campaign("cap")
    image = helpers.stored_image((9, 9, 9))
    helpers.capqa_pair(camp, image, "What colour is the square?", "Grey.")
    multi = "[USER] How many boats? [ASSISTANT] Three. [USER] Which colour?"
    helpers.capqa_pair(camp, image, multi, "Red.", multi=True)
    run("capqa", tmp_path / "capqa")
    data = table(tmp_path / "capqa")
    assert data.schema.equals(PUBLISHED["capqa"], check_metadata=False)
    assert [r["question"] for r in data.to_pylist()] == ["What colour is the square?", multi]
    source = molmo_data.load_source(tmp_path / "capqa")
    assert source.kind == "capqa"
    run("capqa", tmp_path / "full", full=True)
    full = table(tmp_path / "full")
    assert full.schema.names[:3] == PUBLISHED["capqa"].names
    assert full.to_pylist()[1]["multi_turn"] is True


def test_empty_ama_sets(tmp_path: Path) -> None:
    for dataset in ("ama", "capqa", "preferences"):
        run(dataset, tmp_path / dataset)
        assert table(tmp_path / dataset).num_rows == 0
