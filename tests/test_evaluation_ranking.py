"""The two AP kernels: hand-computed rankings and a plain-loop restatement of each definition."""

from __future__ import annotations

import numpy as np
import pytest

from readcli.evaluation.ranking import interpolated_mean_precision, percent, trapezoid_ap


def _imp(scores: list[float], labels: list[int]) -> float:
    s = np.array([scores], dtype=float)
    return float(
        interpolated_mean_precision(s, np.array([labels], dtype=bool), np.ones_like(s, dtype=bool))[0]
    )


def test_interpolated_mean_precision_by_hand() -> None:
    # Ranked 1 0 1 0: precision 1 at the first positive, 2/3 at the second -> mean 5/6.
    assert _imp([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # Tied scores form one threshold: {0.5, 0.5} holds one positive -> precision 1/2 there,
    # then 2/3 at 0.1; interpolation lifts the first to 2/3 -> mean 2/3.
    assert _imp([0.5, 0.5, 0.1], [1, 0, 1]) == pytest.approx(2 / 3)
    # A threshold that adds no positive is not averaged: only precision 1/2 at 0.8 counts.
    assert _imp([0.9, 0.8, 0.7], [0, 1, 0]) == pytest.approx(0.5)
    # The reference returns 0 without positives and 1 when every item is positive.
    assert _imp([0.3, 0.2], [0, 0]) == 0.0
    assert _imp([0.3, 0.2], [1, 1]) == 1.0


def _plain_interpolated(scores: np.ndarray, labels: np.ndarray) -> float:
    """At each distinct score (high to low) that adds a positive: best precision at that recall or beyond."""
    if labels.sum() == 0:
        return 0.0
    if labels.all():
        return 1.0
    points = []
    for threshold in sorted(set(scores.tolist()), reverse=True):
        chosen = scores >= threshold
        points.append((labels[chosen].sum() / chosen.sum(), labels[chosen].sum()))
    taken, previous = [], 0
    for i, (_, found) in enumerate(points):
        if found > previous:
            taken.append(max(p for p, _ in points[i:]))
        previous = found
    return float(np.mean(taken))


def test_interpolated_mean_precision_matches_the_plain_definition_with_padding() -> None:
    rng = np.random.default_rng(0)
    rows, width = 200, 12
    scores = rng.integers(0, 4, size=(rows, width)).astype(float)  # coarse scores: many ties
    labels = rng.random((rows, width)) < 0.3
    lengths = rng.integers(1, width + 1, size=rows)
    valid = np.arange(width)[None, :] < lengths[:, None]
    scores[~valid] = 99.0  # padding must not count even when it would rank first
    ours = interpolated_mean_precision(scores, labels, valid)
    for r in range(rows):
        n = lengths[r]
        assert ours[r] == pytest.approx(_plain_interpolated(scores[r, :n], labels[r, :n]), abs=1e-12)


def test_trapezoid_ap_by_hand() -> None:
    ranked = np.array(
        [
            [1, 0, 1, 0],  # .5·(1+1)/2 + 0 + .5·(1/2 + 2/3)/2 = 19/24
            [0, 1, 0, 0],  # first step has recall 0; then 1·(0 + 1/2)/2 = 1/4
            [0, 0, 0, 0],  # no positive -> 0
            [1, 1, 0, 0],  # both first -> 1
        ],
        dtype=bool,
    )
    assert trapezoid_ap(ranked) == pytest.approx([19 / 24, 1 / 4, 0.0, 1.0])


def test_percent_rounds_to_two_decimals() -> None:
    assert percent(0.123456) == 12.35
    assert percent(1.0) == 100.0
