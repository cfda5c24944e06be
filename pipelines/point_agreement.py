"""Agreement between annotators who pointed at the same things in one image.

For one label (a referring expression, e.g. "red cups") two annotators agree when

- their counts agree: ``|n_a - n_b| <= count_tolerance``, and
- their points agree: a one-to-one matching pairs the points (Hungarian algorithm,
  scipy's ``linear_sum_assignment``) where a pair counts only when its distance is at
  most ``distance`` percent of the image diagonal, and at most ``count_tolerance``
  points of the larger set stay unmatched.

The matching first maximises the number of pairs within the distance (a pair beyond
it costs more than every close pair together), then minimises their total distance; so
a shifted cluster is matched point to point, not greedily. Distances are measured in
pixels of the original image (percent of width and height are different units when the
image is not square), then expressed as percent of its diagonal.

A label agrees when every pair of annotators who gave it agree. Labels named by only
one annotator are not compared. Pure functions: no Django, no database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.optimize import linear_sum_assignment

Point = tuple[float, float]
"""(x, y) in percent of image width and height, 0..100."""


@dataclass(frozen=True)
class AgreementRules:
    distance: float = 5.0  # percent of the image diagonal within which two points match
    count_tolerance: int = 0  # counts may differ by this much (and as many points unmatched)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.distance) and self.distance > 0):
            raise ValueError(f"distance must be a positive number, got {self.distance}")
        if self.count_tolerance < 0:
            raise ValueError(f"count_tolerance must not be negative, got {self.count_tolerance}")


@dataclass(frozen=True)
class PairResult:
    """Two annotations of one label compared."""

    a: int  # annotation ids, a < b
    b: int
    count_a: int
    count_b: int
    matched: int  # pairs of points within the distance
    mean_distance: float | None  # of the matched pairs, percent of the diagonal
    count_agreed: bool
    agreed: bool

    @property
    def f1(self) -> float:
        """2 * matched / (n_a + n_b): 1.0 for identical sets, and for two empty ones."""
        total = self.count_a + self.count_b
        return 1.0 if total == 0 else 2 * self.matched / total


@dataclass(frozen=True)
class LabelResult:
    key: str
    label: str  # as the first annotator wrote it
    counts: dict[int, int]  # annotation id -> number of points
    pairs: list[PairResult]

    @property
    def agreed(self) -> bool:
        return all(p.agreed for p in self.pairs)


@dataclass
class AnnotatorFigures:
    """One annotator's share of an item's comparisons (summed into running totals)."""

    labels_compared: int = 0
    labels_agreed: int = 0
    pairs: int = 0
    pairs_agreed: int = 0
    pairs_count_agreed: int = 0
    f1_sum: float = 0.0


@dataclass
class ItemResult:
    labels: list[LabelResult]
    single: dict[str, list[int]]  # labels only one annotation gave: key -> [annotation id]
    annotators: dict[int, AnnotatorFigures] = field(default_factory=dict)  # by annotation id

    @property
    def compared(self) -> bool:
        """Whether any label was given by two annotators (else nothing was checked)."""
        return bool(self.labels)

    @property
    def agreed(self) -> bool:
        return self.compared and all(label.agreed for label in self.labels)


def match_points(
    a: Sequence[Point], b: Sequence[Point], *, width: float, height: float, distance: float
) -> tuple[int, float | None]:
    """Pairs of the best one-to-one matching within `distance` (% of the diagonal).

    Returns (number of pairs, their mean distance in % of the diagonal, or None).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not a or not b:
        return 0, None
    diagonal = math.hypot(width, height)
    scale = np.array([width / 100.0, height / 100.0])
    pa = np.asarray(a, dtype=np.float64) * scale  # [A, 2] pixels
    pb = np.asarray(b, dtype=np.float64) * scale  # [B, 2] pixels
    dist = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1) * (100.0 / diagonal)  # [A, B]
    close = dist <= distance
    # A far pair costs more than all close pairs together: pairs first, distance second.
    penalty = distance * (len(a) + len(b)) + 1.0
    rows, cols = linear_sum_assignment(np.where(close, dist, penalty))
    hits = close[rows, cols]
    matched = int(hits.sum())
    mean = float(dist[rows, cols][hits].mean()) if matched else None
    return matched, mean


def compare_pair(
    a_id: int,
    a: Sequence[Point],
    b_id: int,
    b: Sequence[Point],
    *,
    width: float,
    height: float,
    rules: AgreementRules,
) -> PairResult:
    matched, mean = match_points(a, b, width=width, height=height, distance=rules.distance)
    count_agreed = abs(len(a) - len(b)) <= rules.count_tolerance
    unmatched = max(len(a), len(b)) - matched
    return PairResult(
        a=a_id,
        b=b_id,
        count_a=len(a),
        count_b=len(b),
        matched=matched,
        mean_distance=mean,
        count_agreed=count_agreed,
        agreed=count_agreed and unmatched <= rules.count_tolerance,
    )


def compare_item(
    annotations: Mapping[int, Mapping[str, tuple[str, Sequence[Point]]]],
    *,
    width: float,
    height: float,
    rules: AgreementRules,
) -> ItemResult:
    """Compare every label that two or more annotations gave.

    `annotations`: annotation id -> {label key -> (label as written, points)}; keys are
    labels normalised by the caller (case, spacing), so "Red cup" and "red  cup" meet.
    """
    ids = sorted(annotations)
    keys: dict[str, list[int]] = {}
    for annotation_id in ids:
        for key in annotations[annotation_id]:
            keys.setdefault(key, []).append(annotation_id)
    labels: list[LabelResult] = []
    single: dict[str, list[int]] = {}
    figures = {annotation_id: AnnotatorFigures() for annotation_id in ids}
    for key in sorted(keys):
        givers = keys[key]
        if len(givers) < 2:
            single[key] = givers
            continue
        pairs = [
            compare_pair(
                x,
                annotations[x][key][1],
                y,
                annotations[y][key][1],
                width=width,
                height=height,
                rules=rules,
            )
            for x, y in combinations(givers, 2)
        ]
        result = LabelResult(
            key=key,
            label=annotations[givers[0]][key][0],
            counts={g: len(annotations[g][key][1]) for g in givers},
            pairs=pairs,
        )
        labels.append(result)
        _add_figures(figures, result)
    return ItemResult(labels=labels, single=single, annotators=figures)


def _add_figures(figures: dict[int, AnnotatorFigures], label: LabelResult) -> None:
    for annotation_id in label.counts:
        mine = figures[annotation_id]
        mine.labels_compared += 1
        mine.labels_agreed += int(label.agreed)
    for pair in label.pairs:
        for annotation_id in (pair.a, pair.b):
            mine = figures[annotation_id]
            mine.pairs += 1
            mine.pairs_agreed += int(pair.agreed)
            mine.pairs_count_agreed += int(pair.count_agreed)
            mine.f1_sum += pair.f1
