"""QVHighlights highlight detection: HL-mAP and HL-Hit1 at three saliency thresholds, as the official
evaluator computes them.

Each of the 3 annotators scores every relevant 2-second clip 0..4 (clips outside the relevant ones
count 0). At threshold "Fair" (≥ 2), "Good" (≥ 3) and "VeryGood" (≥ 4) a clip is positive for an
annotator when its score reaches the threshold ("HL-min-…": the minimum score of a positive).
HL-mAP: the AP of the predicted saliency ranking against each annotator's positives, averaged over
annotators and queries. HL-Hit1: whether the top-scored clip is positive for at least one annotator.

Legend: Q queries, N clips (padded to the longest video), A annotators (3), S thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from readcli.evaluation.ranking import interpolated_mean_precision, percent

SALIENCY_THRESHOLDS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}
CLIP_SECONDS = 2.0  # QVHighlights annotates 2-second clips
NUM_ANNOTATORS = 3


def clip_score_matrix(duration: float, clip_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Annotator scores over the whole video: (int(duration / 2), 3), zero outside the relevant clips."""
    full = np.zeros((int(duration / CLIP_SECONDS), NUM_ANNOTATORS))  # (N_q, A)
    full[clip_ids.astype(np.int64)] = scores
    return full


def highlight_metrics(
    pred_scores: Sequence[np.ndarray], gt_scores: Sequence[np.ndarray]
) -> dict[str, dict[str, float]]:
    """Official-layout HL metrics: {"HL-min-Fair": {"HL-mAP": .., "HL-Hit1": ..}, ...} in percent.

    pred_scores[i]: (n_i,) one predicted saliency per clip, n_i ≥ 1; gt_scores[i]: (N_i, 3) from
    `clip_score_matrix`. As in the official code, a prediction longer than the video is cut to
    its clips for the AP, a shorter one is padded with zeros, and Hit1 uses the argmax over the
    whole prediction (a top clip past the video's end is a miss).
    """
    queries = len(gt_scores)
    clips = np.array([len(g) for g in gt_scores])  # (Q,)
    width = max(int(clips.max(initial=0)), max((len(p) for p in pred_scores), default=0))
    valid = np.arange(width)[None, :] < clips[:, None]  # (Q, N)
    aligned = np.zeros((queries, width))  # prediction cut or zero-padded to the video  # (Q, N)
    raw = np.full((queries, width), -np.inf)  # the prediction as given, for the argmax  # (Q, N)
    gt = np.zeros((queries, width, NUM_ANNOTATORS))  # (Q, N, A)
    for q, (pred, truth) in enumerate(zip(pred_scores, gt_scores, strict=True)):
        kept = min(len(pred), len(truth))
        aligned[q, :kept] = pred[:kept]
        raw[q, : len(pred)] = pred
        gt[q, : len(truth)] = truth
    top = np.argmax(raw, axis=-1)  # first best clip  # (Q,)
    top_inside = top < clips  # (Q,)
    top_scores = gt[np.arange(queries), np.minimum(top, max(width - 1, 0))]  # (Q, A)

    metrics: dict[str, dict[str, float]] = {}
    for name, minimum in SALIENCY_THRESHOLDS.items():
        positive = gt >= minimum  # (Q, N, A)
        rows = positive.transpose(0, 2, 1).reshape(queries * NUM_ANNOTATORS, width)  # (Q·A, N)
        ap = interpolated_mean_precision(
            np.repeat(aligned, NUM_ANNOTATORS, axis=0), rows, np.repeat(valid, NUM_ANNOTATORS, axis=0)
        )  # (Q·A,)
        hit = ((top_scores >= minimum) & top_inside[:, None]).any(-1)  # any annotator agrees  # (Q,)
        metrics[f"HL-min-{name}"] = {
            "HL-mAP": percent(float(ap.mean())) if queries else float("nan"),
            "HL-Hit1": percent(float(hit.mean())) if queries else float("nan"),
        }
    return metrics
