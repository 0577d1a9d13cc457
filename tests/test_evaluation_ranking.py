"""The two AP kernels: hand-computed rankings and a plain-loop restatement of each definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from readcli.evaluation.ranking import interpolated_mean_precision, percent, ties_decide, trapezoid_ap


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


def _distinct_aps(scores: np.ndarray, labels: np.ndarray, keep: int | None) -> set[float]:
    """The trapezoid AP under every order of the tied clips (brute force over the permutations)."""
    runs: dict[float, list[int]] = {}
    for i, score in enumerate(scores.tolist()):
        runs.setdefault(score, []).append(i)
    values = set()
    for orders in itertools.product(*(itertools.permutations(runs[s]) for s in sorted(runs, reverse=True))):
        ranked = labels[[i for run in orders for i in run]][None]  # (1, N)
        values.add(round(float(trapezoid_ap(ranked if keep is None else ranked[:, :keep])[0]), 12))
    return values


def test_ties_decide_exactly_when_some_order_of_tied_clips_changes_the_ap() -> None:
    rng = np.random.default_rng(0)
    for _ in range(250):
        n = int(rng.integers(1, 7))
        scores = rng.integers(0, 3, n).astype(float)  # three levels: many ties
        labels = rng.random(n) < rng.random()
        pad = int(rng.integers(0, 3))  # padding (score 9, above everything) must never count
        padded = np.concatenate([scores, np.full(pad, 9.0)])[None]  # (1, n + pad)
        flags = np.concatenate([labels, np.ones(pad, dtype=bool)])[None]
        valid = (np.arange(n + pad) < n)[None]
        for keep in (None, 1, 3, 5):
            decided = bool(ties_decide(padded, flags, valid, keep)[0])
            assert decided == (len(_distinct_aps(scores, labels, keep)) > 1), (scores, labels, keep)


def test_ties_decide_by_hand() -> None:
    scores = np.array([[0.5, 0.5, 0.1, 0.1], [0.9, 0.5, 0.5, 0.1], [0.9, 0.9, 0.1, 0.1]])
    labels = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 1]], dtype=bool)
    valid = np.ones_like(labels)
    # row 0: the top two tie with labels 1, 0; row 1: 1, 0 tie at ranks 2-3; row 2: 0, 1 tie at 3-4
    assert ties_decide(scores, labels, valid).tolist() == [True, True, True]
    # top 1: only row 0's tie reaches it. Top 2: row 1's tie starts at the last kept rank below a
    # positive, so either clip gives AP 1. Top 3: row 1's tie decides the third clip; row 2's is
    # in row 1's old place (last kept rank, positives above). Top 4: row 2's decides the order too.
    assert ties_decide(scores, labels, valid, keep=1).tolist() == [True, False, False]
    assert ties_decide(scores, labels, valid, keep=2).tolist() == [True, False, False]
    assert ties_decide(scores, labels, valid, keep=3).tolist() == [True, True, False]
    assert ties_decide(scores, labels, valid, keep=4).tolist() == [True, True, True]
