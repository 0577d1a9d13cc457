"""Ranking metrics shared by the evaluators: two average-precision kernels and the percent format.

Both kernels work on many rankings at once, padded to one length with a validity mask. The
definitions, and where they come from, are in docs/evaluation.md.

Legend: R rankings (rows), N items per ranking (padded), K items kept from the top.
"""

from __future__ import annotations

import numpy as np


def percent(value: float) -> float:
    """A fraction as a percentage with 2 decimals, rounded the way the official evaluators round."""
    return float(f"{100 * value:.2f}")


def interpolated_mean_precision(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """AP of each row as the QVHighlights highlight evaluator defines it (video2gif's `get_ap`).

    Items are ranked by score with ties forming one threshold; at every threshold that adds a
    positive, take the interpolated precision (the best precision at that recall or beyond); AP is
    the plain mean of those precisions. A row with no positive scores 0, a row of positives 1.
    scores (R, N) float, labels (R, N) bool, valid (R, N) bool -> (R,) in [0, 1].
    """
    rows, width = scores.shape
    order = np.lexsort((-scores, ~valid), axis=-1)  # valid items first, best score first  # (R, N)
    s = np.take_along_axis(scores, order, axis=-1)  # (R, N)
    v = np.take_along_axis(valid, order, axis=-1)  # (R, N)
    y = np.take_along_axis(labels, order, axis=-1) & v  # (R, N)
    position = np.arange(width)  # (N,)
    same_as_next = np.zeros((rows, width), dtype=bool)
    same_as_next[:, :-1] = (s[:, 1:] == s[:, :-1]) & v[:, 1:]
    group_end = v & ~same_as_next  # the last item of each run of tied scores  # (R, N)
    group_start = v.copy()
    group_start[:, 1:] &= s[:, 1:] != s[:, :-1]
    true_pos = np.cumsum(y, axis=-1)  # positives ranked at or above each item  # (R, N)
    start_at = np.maximum.accumulate(np.where(group_start, position, 0), axis=-1)  # (R, N)
    before_group = np.take_along_axis(true_pos - y, start_at, axis=-1)  # positives above the group
    adds_recall = group_end & (true_pos > before_group)  # thresholds where recall grows  # (R, N)
    precision = np.where(group_end, true_pos / (position + 1), 0.0)  # (R, N)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=-1)[:, ::-1]  # best precision at ≥ recall
    counted = adds_recall.sum(-1)  # (R,)
    ap = (envelope * adds_recall).sum(-1) / np.maximum(counted, 1)  # (R,)
    positives = y.sum(-1)  # (R,)
    ap = np.where(positives == v.sum(-1), 1.0, ap)  # every item relevant (the reference returns 1)
    return np.where(positives == 0, 0.0, ap)  # nothing relevant (the reference returns 0)


def ranked_labels(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and validity reordered by score, best first; ties keep the earlier item first.

    scores (R, N), labels (R, N) bool, valid (R, N) bool -> two (R, N) bool arrays.
    """
    order = np.lexsort((-scores, ~valid), axis=-1)  # stable: ties stay in clip order  # (R, N)
    return np.take_along_axis(labels & valid, order, axis=-1), np.take_along_axis(valid, order, axis=-1)


def trapezoid_ap(ranked: np.ndarray) -> np.ndarray:
    """AP of ranked binary labels by the trapezoid rule from (recall 0, precision 1), as UMT computes it.

    Recall is relative to the positives present in the given ranking (for a top-k ranking, those
    among the k); a ranking without positives scores 0. Padding must be False.
    ranked (R, K) bool, best first -> (R,) in [0, 1].
    """
    rows, width = ranked.shape
    hits = np.cumsum(ranked, axis=-1)  # (R, K)
    total = hits[:, -1] if width else np.zeros(rows, dtype=np.int64)  # (R,)
    recall = hits / np.maximum(total, 1)[:, None]  # (R, K)
    precision = hits / np.arange(1, width + 1)  # (R, K)
    prev_recall = np.concatenate([np.zeros((rows, 1)), recall[:, :-1]], axis=-1)  # (R, K)
    prev_precision = np.concatenate([np.ones((rows, 1)), precision[:, :-1]], axis=-1)  # (R, K)
    ap = ((recall - prev_recall) * (prev_precision + precision) / 2).sum(-1)  # (R,)
    return np.where(total == 0, 0.0, ap)


def ties_decide(
    scores: np.ndarray, labels: np.ndarray, valid: np.ndarray, keep: int | None = None
) -> np.ndarray:
    """Whether the order of tied scores can change `trapezoid_ap` of the top `keep` (all when None).

    True for a row with a run of tied scores that holds a positive and a negative and starts among
    the first `keep` ranks: the run decides which clip comes first (every prefix counts in the AP)
    or enters the cut at all. One exception, where every order gives AP 1: the run starts at the
    last kept rank and every clip above it is positive. A run of equal labels, or one wholly below
    the cut, cannot change the value. scores (R, N), labels (R, N) bool, valid (R, N) bool -> (R,) bool.
    """
    rows, width = scores.shape
    order = np.lexsort((-scores, ~valid), axis=-1)  # the ranking `ranked_labels` uses  # (R, N)
    s = np.take_along_axis(scores, order, axis=-1)  # (R, N)
    v = np.take_along_axis(valid, order, axis=-1)  # (R, N)
    y = np.take_along_axis(labels, order, axis=-1) & v  # (R, N)
    start = np.ones((rows, width), dtype=bool)  # a new run of tied scores begins here  # (R, N)
    start[:, 1:] = (s[:, 1:] != s[:, :-1]) | (v[:, 1:] != v[:, :-1])
    run = np.cumsum(start, axis=-1) - 1  # run index of each item  # (R, N)
    run_start = np.maximum.accumulate(np.where(start, np.arange(width), 0), axis=-1)  # (R, N)
    cut = width if keep is None else keep
    above = np.take_along_axis(np.cumsum(y, axis=-1) - y, run_start, axis=-1)  # positives above the run
    only_last = (run_start == cut - 1) & (run_start > 0) & (above == run_start)  # AP 1 either way
    counted = v & (run_start < cut) & ~only_last  # items of runs that can change the AP  # (R, N)
    flat = (np.arange(rows)[:, None] * width + run).ravel()  # (R·N,) one bin per (row, run)
    positives = np.bincount(flat, weights=(counted & y).ravel(), minlength=rows * width)  # (R·N,)
    negatives = np.bincount(flat, weights=(counted & ~y).ravel(), minlength=rows * width)  # (R·N,)
    mixed = (positives > 0) & (negatives > 0)  # (R·N,)
    return np.asarray(mixed.reshape(rows, width).any(-1))
