"""Agreement between annotators on constructed cases: same, shifted, missing, extra points."""

from __future__ import annotations

import math

import pytest

from pipelines.point_agreement import AgreementRules, compare_item, compare_pair, match_points

SQUARE = {"width": 100.0, "height": 100.0}
RULES = AgreementRules(distance=5.0, count_tolerance=0)
CUPS = [(10.0, 20.0), (40.0, 25.0), (70.0, 60.0), (20.0, 80.0)]


def shifted(points: list[tuple[float, float]], dx: float, dy: float) -> list[tuple[float, float]]:
    return [(x + dx, y + dy) for x, y in points]


def test_the_same_points_agree() -> None:
    pair = compare_pair(1, CUPS, 2, list(reversed(CUPS)), **SQUARE, rules=RULES)
    assert (pair.matched, pair.count_agreed, pair.agreed) == (4, True, True)
    assert pair.f1 == 1.0 and pair.mean_distance == pytest.approx(0.0)


def test_points_shifted_within_the_distance_agree_and_beyond_it_do_not() -> None:
    # 3 % of width and height on a square image: 4.24 / 141.42 * 100 = 3.0 % of the diagonal;
    # 6 % each way is 6 % of the diagonal, beyond the 5 % of the rules.
    near = compare_pair(1, CUPS, 2, shifted(CUPS, 3, 3), **SQUARE, rules=RULES)
    assert near.agreed and near.matched == 4
    assert near.mean_distance == pytest.approx(3.0, abs=1e-9)
    far = compare_pair(1, CUPS, 2, shifted(CUPS, 6, 6), **SQUARE, rules=RULES)
    assert far.count_agreed and not far.agreed and far.matched == 0 and far.f1 == 0.0


def test_a_missing_point_breaks_the_count_and_the_match() -> None:
    pair = compare_pair(1, CUPS, 2, CUPS[:3], **SQUARE, rules=RULES)
    assert (pair.count_a, pair.count_b, pair.matched) == (4, 3, 3)
    assert not pair.count_agreed and not pair.agreed
    assert pair.f1 == pytest.approx(6 / 7)
    lenient = AgreementRules(distance=5.0, count_tolerance=1)
    assert compare_pair(1, CUPS, 2, CUPS[:3], **SQUARE, rules=lenient).agreed


def test_an_extra_point_far_away_breaks_agreement_even_with_equal_counts() -> None:
    # Same count, but one of B's points is somewhere else entirely.
    other = [*CUPS[:3], (90.0, 10.0)]
    pair = compare_pair(1, CUPS, 2, other, **SQUARE, rules=RULES)
    assert pair.count_agreed and pair.matched == 3 and not pair.agreed
    extra = compare_pair(1, CUPS, 2, [*CUPS, (90.0, 10.0)], **SQUARE, rules=RULES)
    assert (extra.matched, extra.count_agreed, extra.agreed) == (4, False, False)


def test_two_not_present_answers_agree_and_one_against_points_does_not() -> None:
    both = compare_pair(1, [], 2, [], **SQUARE, rules=RULES)
    assert both.agreed and both.f1 == 1.0 and both.mean_distance is None
    one = compare_pair(1, [], 2, CUPS[:1], **SQUARE, rules=RULES)
    assert not one.agreed and one.f1 == 0.0


def test_the_matching_is_one_to_one_and_optimal_not_greedy() -> None:
    # a1 is close to both b's, a2 only to b1: greedy (a1-b1 first) would match one pair.
    a = [(10.0, 10.0), (14.0, 10.0)]
    b = [(12.0, 10.0), (8.0, 10.0)]
    matched, _ = match_points(a, b, **SQUARE, distance=3.0)
    assert matched == 2
    # Two points near one: only one of them can pair with it.
    assert match_points([(50.0, 50.0), (50.5, 50.0)], [(50.2, 50.0)], **SQUARE, distance=5)[0] == 1


def test_distance_is_measured_in_pixels_on_a_wide_image() -> None:
    # 1000 x 100 pixels: 1 % of the width is 10 px, 1 % of the height 1 px.
    wide = {"width": 1000.0, "height": 100.0}
    diagonal = math.hypot(1000, 100)
    across, _ = match_points([(50, 50)], [(51, 50)], **wide, distance=0.99 * 1000 / diagonal)
    down, _ = match_points([(50, 50)], [(50, 59)], **wide, distance=0.99 * 1000 / diagonal)
    assert (across, down) == (0, 1)


def test_an_item_compares_shared_labels_and_counts_per_annotator() -> None:
    annotations = {
        10: {"cup": ("Cup", CUPS), "dog": ("dog", [(5.0, 5.0)]), "cat": ("cat", [])},
        11: {"cup": ("cup", shifted(CUPS, 1, 0)), "dog": ("dog", [(60.0, 60.0)])},
        12: {"cup": ("cups", CUPS[:3])},
    }
    result = compare_item(annotations, **SQUARE, rules=RULES)
    by_key = {label.key: label for label in result.labels}
    assert set(by_key) == {"cup", "dog"} and result.single == {"cat": [10]}
    assert by_key["cup"].counts == {10: 4, 11: 4, 12: 3} and len(by_key["cup"].pairs) == 3
    assert not by_key["cup"].agreed and not by_key["dog"].agreed and not result.agreed
    assert by_key["cup"].label == "Cup"
    # 10 and 11 agree on cups; both disagree with 12 (one cup short).
    ten = result.annotators[10]
    assert (ten.labels_compared, ten.labels_agreed, ten.pairs, ten.pairs_agreed) == (2, 0, 3, 1)
    assert result.annotators[12].pairs_count_agreed == 0


def test_nothing_in_common_is_not_agreement() -> None:
    result = compare_item(
        {1: {"cup": ("cup", CUPS)}, 2: {"dog": ("dog", CUPS)}}, **SQUARE, rules=RULES
    )
    assert not result.compared and not result.agreed


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="distance"):
        AgreementRules(distance=float("nan"))
    with pytest.raises(ValueError, match="count_tolerance"):
        AgreementRules(count_tolerance=-1)
    with pytest.raises(ValueError, match="image size"):
        match_points(CUPS, CUPS, width=0, height=10, distance=5)
