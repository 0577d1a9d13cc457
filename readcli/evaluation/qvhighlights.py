"""QVHighlights evaluation: official key names and layout, from prediction and ground-truth rows.

`evaluate_qvhighlights` returns the flat `brief` metrics (what a training loop selects on);
`qvhighlights_report` returns the official evaluator's whole output: `brief` followed by the
nested per-bucket and per-threshold dicts. Rows come from jsonl files (`read_jsonl`) or from Python.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from readcli.errors import InputFileError
from readcli.evaluation.highlights import NUM_ANNOTATORS, clip_score_matrix, highlight_metrics
from readcli.evaluation.jsonl import Rows, as_rows, check_same_ids, number_array, unique_keys
from readcli.evaluation.moments import moment_retrieval_metrics

log = logging.getLogger(__name__)

WINDOWS_FIELD = "pred_relevant_windows"
SALIENCY_FIELD = "pred_saliency_scores"
_BRIEF_MR = {  # brief key -> (bucket, metric, threshold key)
    "MR-full-mAP": ("full", "MR-mAP", "average"),
    "MR-full-mAP@0.5": ("full", "MR-mAP", "0.5"),
    "MR-full-mAP@0.75": ("full", "MR-mAP", "0.75"),
    "MR-short-mAP": ("short", "MR-mAP", "average"),
    "MR-middle-mAP": ("middle", "MR-mAP", "average"),
    "MR-long-mAP": ("long", "MR-mAP", "average"),
    "MR-full-R1@0.5": ("full", "MR-R1", "0.5"),
    "MR-full-R1@0.7": ("full", "MR-R1", "0.7"),
}

RowsLike = Rows | Iterable[Mapping[str, Any]]


def evaluate_qvhighlights(predictions: RowsLike, ground_truth: RowsLike) -> dict[str, float]:
    """The official `brief` metrics (percent, 2 decimals), e.g. `MR-full-mAP`, `HL-min-VeryGood-Hit1`."""
    brief: dict[str, float] = qvhighlights_report(predictions, ground_truth)["brief"]
    return brief


def qvhighlights_report(predictions: RowsLike, ground_truth: RowsLike) -> dict[str, Any]:
    """The official evaluator's output: {"brief": {...}, "HL-min-Fair": {...}, ..., "short": {...}}.

    Prediction and ground-truth qids must be the same set. Moment metrics need
    `pred_relevant_windows` and highlight metrics `pred_saliency_scores`; a file may carry either
    or both (every row then carries it).
    """
    pred = as_rows(predictions, "predictions")
    gt = as_rows(ground_truth, "ground_truth")
    pred_ids = unique_keys(pred, ("qid",))
    gt_index = {qid: i for i, qid in enumerate(unique_keys(gt, ("qid",)))}
    check_same_ids(pred_ids, gt_index, sources=(pred.name, gt.name))
    order = [gt_index[qid] for qid in pred_ids]  # ground-truth row of each prediction row
    has_mr, has_hl = pred.has_field(WINDOWS_FIELD), pred.has_field(SALIENCY_FIELD)
    if not (has_mr or has_hl):
        raise InputFileError(f"{pred.name}: rows carry neither {WINDOWS_FIELD!r} nor {SALIENCY_FIELD!r}")
    full: dict[str, Any] = {}
    brief: dict[str, float] = {}
    if has_mr:
        moments = _moment_metrics(pred, gt, order)
        full.update(moments)
        for key in sorted(_BRIEF_MR):  # the official brief lists MR keys sorted by name
            bucket, metric, threshold = _BRIEF_MR[key]
            brief[key] = moments[bucket][metric][threshold]
    if has_hl:
        highlights = _highlight_metrics(pred, gt, order)
        full.update(highlights)
        for level, values in highlights.items():
            brief.update({f"{level}-{metric.split('-')[1]}": value for metric, value in values.items()})
    return {"brief": brief, **dict(sorted(full.items()))}


def _moment_metrics(pred: Rows, gt: Rows, order: list[int]) -> dict[str, Any]:
    pred_windows, gt_windows = [], []
    for p, g in enumerate(order):
        windows = number_array(pred.field(p, WINDOWS_FIELD), pred.origins[p], WINDOWS_FIELD, ndim=2, width=3)
        truth = number_array(
            gt.field(g, "relevant_windows"), gt.origins[g], "relevant_windows", ndim=2, width=2
        )
        if (truth[:, 1] < truth[:, 0]).any():
            raise InputFileError(f"{gt.origins[g]}: a relevant window ends before it starts")
        if len(truth) == 0:  # AP is undefined without a GT window; the official code yields NaN
            continue
        pred_windows.append(windows)
        gt_windows.append(truth[:, :2])
    if len(gt_windows) < len(order):
        log.warning(
            "%d queries without ground-truth windows left out of MR metrics", len(order) - len(gt_windows)
        )
    return moment_retrieval_metrics(pred_windows, gt_windows)


def _highlight_metrics(pred: Rows, gt: Rows, order: list[int]) -> dict[str, Any]:
    pred_scores, gt_scores = [], []
    for p, g in enumerate(order):
        scores = number_array(pred.field(p, SALIENCY_FIELD), pred.origins[p], SALIENCY_FIELD)
        if len(scores) == 0:
            raise InputFileError(f"{pred.origins[p]}: field {SALIENCY_FIELD!r} is empty")
        pred_scores.append(scores)
        gt_scores.append(_gt_clip_scores(gt, g))
    return highlight_metrics(pred_scores, gt_scores)


def _gt_clip_scores(gt: Rows, g: int) -> np.ndarray:
    """(clips, 3) annotator scores of ground-truth row g, checked against its duration."""
    origin = gt.origins[g]
    duration = float(number_array([gt.field(g, "duration")], origin, "duration")[0])
    clip_ids = number_array(gt.field(g, "relevant_clip_ids"), origin, "relevant_clip_ids")
    scores = number_array(gt.field(g, "saliency_scores"), origin, "saliency_scores", ndim=2, width=3)
    num_clips = int(duration / 2)
    if len(scores) != len(clip_ids) or (len(scores) and scores.shape[1] != NUM_ANNOTATORS):
        raise InputFileError(
            f"{origin}: 'saliency_scores' must hold one [a1, a2, a3] triple per relevant clip "
            f"({len(clip_ids)} clips, found shape {tuple(scores.shape)})"
        )
    bad = clip_ids[(clip_ids < 0) | (clip_ids >= num_clips) | (clip_ids != np.round(clip_ids))]
    if len(bad):
        raise InputFileError(
            f"{origin}: relevant clip id {bad[0]:g} outside the video (duration {duration:g} s = "
            f"{num_clips} clips of 2 s: use ids 0..{num_clips - 1})"
        )
    return clip_score_matrix(duration, clip_ids, scores)
