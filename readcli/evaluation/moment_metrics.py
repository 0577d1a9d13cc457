"""QVHighlights moment retrieval metrics, computed the way the official evaluator computes them.

mAP over IoU thresholds 0.5:0.05:0.95 (greedy matching in score order, VOC-style interpolated AP),
R1 at the same thresholds, over all queries and over three length buckets of the ground-truth
windows. Every query is handled at once on padded arrays; only the greedy matching loops, over the
at most 10 predicted windows. docs/evaluation.md lists the official rules reproduced here.

Legend: Q queries, P predicted windows per query (≤ 10), G ground-truth windows, T IoU thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from readcli.evaluation.ranking import percent

IOU_THRESHOLDS: tuple[float, ...] = tuple(float(f"{0.5 + 0.05 * i:.2f}") for i in range(10))
MAX_PRED_WINDOWS = 10  # the official evaluator scores only the first 10 windows of each row
# bucket -> (min, max] of a ground-truth window's length in seconds; None keeps every window
LENGTH_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,
}


def pad_windows(windows: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-query (n_i, ≥width) window arrays into (Q, max n_i, width) zeros plus a mask."""
    longest = max((len(w) for w in windows), default=0)
    out = np.zeros((len(windows), longest, width))  # (Q, n, width)
    mask = np.zeros((len(windows), longest), dtype=bool)  # (Q, n)
    for index, w in enumerate(windows):
        out[index, : len(w)] = w[:, :width]
        mask[index, : len(w)] = True
    return out, mask


def cross_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """Temporal IoU of every window in spans1 (..., P, 2) with every one in spans2 (..., G, 2).

    Same arithmetic as the official code (so ties at a threshold fall the same way); an empty
    union (two zero-length windows) gives 0 where the official code divides by zero.
    """
    area1 = spans1[..., 1] - spans1[..., 0]  # (..., P)
    area2 = spans2[..., 1] - spans2[..., 0]  # (..., G)
    left = np.maximum(spans1[..., :, None, 0], spans2[..., None, :, 0])  # (..., P, G)
    right = np.minimum(spans1[..., :, None, 1], spans2[..., None, :, 1])  # (..., P, G)
    inter = np.clip(right - left, 0, None)  # (..., P, G)
    union = area1[..., :, None] + area2[..., None, :] - inter  # (..., P, G)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def paired_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """IoU of row i of spans1 (Q, 2) with row i of spans2 (Q, 2), as the official R1 computes it."""
    inter = np.maximum(0, np.minimum(spans1[:, 1], spans2[:, 1]) - np.maximum(spans1[:, 0], spans2[:, 0]))
    hull = np.maximum(spans1[:, 1], spans2[:, 1]) - np.minimum(spans1[:, 0], spans2[:, 0])  # (Q,)
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)  # hull = union when IoU > 0


def detection_ap(
    pred: np.ndarray, pred_mask: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Per-query AP at each IoU threshold: greedy matching in score order, VOC interpolation.

    pred (Q, P, 3) [start, end, score], pred_mask (Q, P), gt (Q, G, 2), gt_mask (Q, G) with at
    least one window per query, thresholds (T,) -> (Q, T).
    """
    queries, num_pred, _ = pred.shape
    num_gt = gt.shape[1]
    order = np.lexsort((-pred[..., 2], ~pred_mask), axis=-1)  # best score first, stable  # (Q, P)
    pred = np.take_along_axis(pred, order[..., None], axis=1)  # (Q, P, 3)
    pred_mask = np.take_along_axis(pred_mask, order, axis=1)  # (Q, P)
    iou = cross_iou(pred[..., :2], gt)  # (Q, P, G)
    # The official loop visits GT windows by descending IoU, later windows first among ties.
    visit = np.argsort(iou, axis=-1, kind="stable")[..., ::-1]  # (Q, P, G)
    rank = np.argsort(visit, axis=-1)  # position of each GT window in that visiting order
    locked = np.zeros((queries, len(thresholds), num_gt), dtype=bool)  # (Q, T, G) already claimed
    true_pos = np.zeros((queries, len(thresholds), num_pred), dtype=bool)  # (Q, T, P)
    for p in range(num_pred):  # greedy in score order: a GT window is claimed once per threshold
        free = (iou[:, p, None, :] >= thresholds[None, :, None]) & gt_mask[:, None, :] & ~locked
        free &= pred_mask[:, p, None, None]  # (Q, T, G)
        pick = np.argmin(np.where(free, rank[:, p, None, :], num_gt), axis=-1)  # (Q, T)
        hit = free.any(-1)  # (Q, T)
        true_pos[:, :, p] = hit
        q_idx, t_idx = np.nonzero(hit)
        locked[q_idx, t_idx, pick[q_idx, t_idx]] = True
    found = np.cumsum(true_pos, axis=-1)  # (Q, T, P)
    recall = found / gt_mask.sum(-1)[:, None, None]  # (Q, T, P)
    precision = np.where(pred_mask[:, None, :], found / np.arange(1, num_pred + 1), 0.0)  # (Q, T, P)
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]  # (Q, T, P)
    recall_step = np.diff(recall, axis=-1, prepend=0.0)  # (Q, T, P)
    return (recall_step * envelope).sum(-1)  # (Q, T)


def recall_at_one(top: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Whether the top window (Q, 2) has IoU ≥ threshold with its best-overlapping GT window -> (Q, T)."""
    iou = np.where(gt_mask, cross_iou(top[:, None, :], gt)[:, 0, :], -np.inf)  # (Q, G)
    best = np.argmax(iou, axis=-1)  # first best, as np.argmax in the official code  # (Q,)
    chosen = gt[np.arange(len(gt)), best]  # (Q, 2)
    return paired_iou(top, chosen)[:, None] >= thresholds[None, :]  # (Q, T)


def moment_retrieval_metrics(
    pred_windows: Sequence[np.ndarray], gt_windows: Sequence[np.ndarray]
) -> dict[str, dict[str, dict[str, float]]]:
    """Official-layout MR metrics per length bucket: {bucket: {"MR-mAP": {...}, "MR-R1": {...}}}.

    pred_windows[i]: (n_i, 3) [start, end, score] in file order; gt_windows[i]: (m_i, 2) seconds,
    m_i ≥ 1. A query enters a bucket when one of its GT windows does, with only those windows.
    A bucket without queries reports NaN, as the official code does.
    """
    thresholds = np.asarray(IOU_THRESHOLDS)  # (T,)
    pred, pred_mask = pad_windows([w[:MAX_PRED_WINDOWS] for w in pred_windows], 3)  # (Q, P, 3)
    has_pred = np.array([len(w) > 0 for w in pred_windows], dtype=bool)  # (Q,)
    top = pred[:, 0, :2] if pred.shape[1] else np.zeros((len(pred_windows), 2))  # R1 uses row order
    gt, gt_mask = pad_windows(gt_windows, 2)  # (Q, G, 2)
    length = gt[..., 1] - gt[..., 0]  # (Q, G)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for name, bounds in LENGTH_BUCKETS.items():
        mask = gt_mask if bounds is None else gt_mask & (length > bounds[0]) & (length <= bounds[1])
        keep = mask.any(-1)  # (Q,)
        ap = detection_ap(pred[keep], pred_mask[keep], gt[keep], mask[keep], thresholds)  # (Qk, T)
        hits = recall_at_one(top[keep], gt[keep], mask[keep], thresholds) & has_pred[keep, None]
        metrics[name] = {"MR-mAP": _map_dict(ap), "MR-R1": _r1_dict(hits)}
    return metrics


def _map_dict(ap: np.ndarray) -> dict[str, float]:
    per_threshold = ap.mean(0) if len(ap) else np.full(len(IOU_THRESHOLDS), np.nan)  # (T,)
    out = {str(t): percent(v) for t, v in zip(IOU_THRESHOLDS, per_threshold, strict=True)}
    out["average"] = percent(float(np.mean(per_threshold)))
    return out


def _r1_dict(hits: np.ndarray) -> dict[str, float]:
    rates = hits.mean(0) if len(hits) else np.full(len(IOU_THRESHOLDS), np.nan)  # (T,)
    return {str(t): percent(v) for t, v in zip(IOU_THRESHOLDS, rates, strict=True)}
