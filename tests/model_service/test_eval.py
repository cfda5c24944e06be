"""Metric edge cases with hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from model_service import eval as ev


def test_hungarian_beats_greedy_nearest_pair() -> None:
    # True A=(0,0), B=(10,0); threshold 6. p1=(4.9,0) is 4.9 from A and 5.1 from B;
    # p2=(-5.5,0) is 5.5 from A and 15.5 from B. Greedy nearest-first pairs p1-A, leaving
    # p2-B (a miss): 1 hit. One-to-one matching pairs p1-B and p2-A: 2 hits.
    pred = [(4.9, 0.0), (-5.5, 0.0)]
    true = [(0.0, 0.0), (10.0, 0.0)]
    assert ev.point_hits(pred, true, threshold=6.0) == 2
    assert ev.pointing_score(pred, true, threshold=6.0) == ev.PointScore(1.0, 1.0, 1.0, 2)


def test_hits_maximised_before_distance() -> None:
    # A=(0,0), B=(5,0), threshold 5.05. p2=(0.1,0) hits both (0.1 and 4.9 away);
    # p1=(2.4,4.387) hits A (5.0) but not B (5.1). Minimum total distance pairs
    # p2-A + p1-B (0.1 + 5.1 = 5.2 < 5.0 + 4.9): one hit. Hits must come first: two.
    pred = [(2.4, 4.387), (0.1, 0.0)]
    true = [(0.0, 0.0), (5.0, 0.0)]
    dist = np.linalg.norm(np.asarray(pred)[:, None] - np.asarray(true)[None], axis=-1)
    rows, cols = linear_sum_assignment(dist)
    assert int((dist[rows, cols] <= 5.05).sum()) == 1
    assert ev.point_hits(pred, true, threshold=5.05) == 2


def test_precision_recall_f1_by_hand() -> None:
    # 3 predictions, 2 true points, one hit: P = 1/3, R = 1/2, F1 = 2PR/(P+R) = 0.4
    score = ev.pointing_score([(0, 0), (50, 50), (90, 90)], [(1, 1), (20, 80)], threshold=5)
    assert score.hits == 1
    assert score.precision == pytest.approx(1 / 3)
    assert score.recall == pytest.approx(0.5)
    assert score.f1 == pytest.approx(0.4)


def test_empty_ground_truth_and_empty_prediction() -> None:
    assert ev.pointing_score([], []).f1 == 1.0
    assert ev.pointing_score([(1.0, 1.0)], []) == ev.PointScore(0.0, 0.0, 0.0, 0)
    assert ev.pointing_score([], [(1.0, 1.0)]) == ev.PointScore(0.0, 0.0, 0.0, 0)


def test_masks_decide_hits_not_distance() -> None:
    # 10x10 image; mask of instance 0 covers the left half (x < 50%).
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    true = [(20.0, 50.0)]
    # Far from the true point but inside its mask: a hit.
    assert ev.point_hits([(45.0, 5.0)], true, masks=[mask], threshold=1.0) == 1
    # Next to the true point but outside the mask: a miss.
    assert ev.point_hits([(55.0, 50.0)], true, masks=[mask], threshold=100.0) == 0
    with pytest.raises(ValueError, match="masks"):
        ev.point_hits([(1.0, 1.0)], true, masks=[mask, mask])


def test_pointing_metrics_average_over_examples() -> None:
    # example 1: F1 1; example 2: empty truth with a prediction, F1 0; mean 0.5.
    metrics = ev.pointing_metrics([[(10.0, 10.0)], [(5.0, 5.0)]], [[(10.0, 11.0)], []])
    assert metrics == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_count_metrics() -> None:
    preds = [
        'Counting the <points x1="1" y1="2" x2="3" y2="4">a</points> shows a total of 2.',
        "There are none.",
        "There are three.",
        "a total of 5",
        "gibberish",
    ]
    assert ev.count_metrics(preds, [2, 0, 3, 4, 0]) == {"accuracy": 3 / 5}


def test_clock_distance_wraps_around_twelve() -> None:
    assert ev.clock_distance((12, 58), (1, 2)) == 4
    assert ev.clock_distance((0, 0), (12, 0)) == 0
    assert ev.clock_distance((3, 0), (9, 0)) == 360


def test_clock_metrics() -> None:
    preds = [
        "The time shown is 3:05.",
        "The time shown is 3:09.",
        "The time shown is 12:58.",
        "I cannot tell.",
        "The time shown is 4:00.",
    ]
    truths = [(3, 5), (3, 5), (1, 2), None, None]
    # exact: #1, #4 (hidden and no time stated) = 2/5; within 5 min: + #2 (4) + #3 (4) = 4/5
    assert ev.clock_metrics(preds, truths) == {"exact": 0.4, "within_5_min": 0.8}


def test_cli_end_to_end_on_clocks(tmp_path, capsys) -> None:
    """A tiny random `debug` checkpoint, a rendered clocks export, the real CLI."""
    import json

    import torch

    from model_service import checkpoint, clocks
    from model_service.model import MolmoModel
    from model_service.presets import get_preset

    torch.manual_seed(0)
    config = get_preset("debug")
    checkpoint.save(tmp_path / "ckpt", MolmoModel(config), config)
    clocks.write_clocks(tmp_path / "clocks", 3, seed=0, size=48)
    report_path = tmp_path / "report.json"
    ev.main([
        "--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "clocks"),
        "--task", "clocks", "--limit", "2", "--batch-size", "2", "--max-new-tokens", "4",
        "--out", str(report_path),
    ])  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["task"] == "clocks" and report["n"] == 2
    assert set(report["metrics"]) == {"exact", "within_5_min"}
    assert len(report["examples"]) == 2 and "prediction" in report["examples"][0]
    assert json.loads(capsys.readouterr().out) == report
    with pytest.raises(ValueError, match="cannot be scored"):
        ev.eval_examples(tmp_path / "clocks", "points")
