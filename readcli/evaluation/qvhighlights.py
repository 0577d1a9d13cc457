"""QVHighlights evaluation: official key names and layout, from prediction and ground-truth rows.

`evaluate_qvhighlights` returns the flat `brief` metrics (what a training loop selects on);
`qvhighlights_report` returns the official evaluator's whole output: `brief` followed by the
nested per-bucket and per-threshold dicts. Rows come from jsonl files (`read_jsonl`) or from Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from readcli.errors import InputFileError
from readcli.evaluation.highlight_metrics import NUM_ANNOTATORS, clip_score_matrix, highlight_metrics
from readcli.evaluation.moment_metrics import moment_retrieval_metrics
from readcli.evaluation.rows import RowsLike, as_rows, check_same_ids, checked, unique_keys
from readcli.records.schemas_annotations import QVHighlightsTruth
from readcli.records.schemas_evaluation import MomentPrediction

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

T = TypeVar("T")


@dataclass(frozen=True)
class _Located:
    """A validated prediction row and where it came from."""

    row: MomentPrediction
    origin: str


@dataclass(frozen=True)
class GroundTruth:
    """A validated ground-truth row and where it came from."""

    row: QVHighlightsTruth
    origin: str


def _required(value: T | None, where: _Located | GroundTruth, key: str) -> T:
    if value is None:
        raise InputFileError(f"{where.origin}: missing field {key!r}")
    return value


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
    pred_rows = as_rows(predictions, "predictions")
    gt_rows = as_rows(ground_truth, "ground_truth")
    pred = [
        _Located(r, o) for r, o in zip(checked(pred_rows, MomentPrediction), pred_rows.origins, strict=True)
    ]
    gt = [
        GroundTruth(r, o) for r, o in zip(checked(gt_rows, QVHighlightsTruth), gt_rows.origins, strict=True)
    ]
    pred_ids = unique_keys(pred_rows, ("qid",))
    gt_index = {qid: i for i, qid in enumerate(unique_keys(gt_rows, ("qid",)))}
    check_same_ids(pred_ids, gt_index, sources=(pred_rows.name, gt_rows.name))
    order = [gt_index[qid] for qid in pred_ids]  # ground-truth row of each prediction row
    has_mr, has_hl = pred_rows.has_field(WINDOWS_FIELD), pred_rows.has_field(SALIENCY_FIELD)
    if not (has_mr or has_hl):
        raise InputFileError(f"{pred_rows.name}: rows carry neither {WINDOWS_FIELD!r} nor {SALIENCY_FIELD!r}")
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


# The official post-processing clips windows to [0, 150 s] (QVHighlights' longest video), not to
# each video's duration: a prediction may reach past its video's end up to that bound.
OFFICIAL_MAX_TS = 150.0


def _moment_metrics(pred: list[_Located], gt: list[GroundTruth], order: list[int]) -> dict[str, Any]:
    pred_windows, gt_windows = [], []
    for p, g in enumerate(order):
        windows = np.asarray(
            _required(pred[p].row.pred_relevant_windows, pred[p], WINDOWS_FIELD), dtype=np.float64
        )
        windows = windows.reshape(-1, 3)  # (W, 3) start, end, score
        truth = np.asarray(_required(gt[g].row.relevant_windows, gt[g], "relevant_windows"), dtype=np.float64)
        bound = max(gt[g].row.duration, OFFICIAL_MAX_TS)
        if len(windows) and windows[:, 1].max() > bound:
            worst = windows[int(windows[:, 1].argmax())]
            raise InputFileError(
                f"{pred[p].origin}: predicted window [{worst[0]:g}, {worst[1]:g}] ends past the video "
                f"({gt[g].origin}: duration {gt[g].row.duration:g} s): windows must end by "
                f"max(duration, {OFFICIAL_MAX_TS:g} s)"
            )
        if len(truth) == 0:  # AP is undefined without a GT window; the official code yields NaN
            continue
        pred_windows.append(windows)
        gt_windows.append(truth.reshape(-1, 2))
    if len(gt_windows) < len(order):
        log.warning(
            "%d queries without ground-truth windows left out of MR metrics", len(order) - len(gt_windows)
        )
    return moment_retrieval_metrics(pred_windows, gt_windows)


def _highlight_metrics(pred: list[_Located], gt: list[GroundTruth], order: list[int]) -> dict[str, Any]:
    pred_scores, gt_scores = [], []
    for p, g in enumerate(order):
        scores = np.asarray(
            _required(pred[p].row.pred_saliency_scores, pred[p], SALIENCY_FIELD), dtype=np.float64
        )
        if len(scores) == 0:
            raise InputFileError(f"{pred[p].origin}: field {SALIENCY_FIELD!r} is empty")
        pred_scores.append(scores)
        gt_scores.append(_gt_clip_scores(gt[g]))
    return highlight_metrics(pred_scores, gt_scores)


def _gt_clip_scores(truth: GroundTruth) -> np.ndarray:
    """(clips, 3) annotator scores of a ground-truth row, checked against its duration."""
    row, origin = truth.row, truth.origin
    clip_ids = np.asarray(_required(row.relevant_clip_ids, truth, "relevant_clip_ids"), dtype=np.float64)
    per_clip = _required(row.saliency_scores, truth, "saliency_scores")
    if any(not isinstance(s, list) or len(s) != NUM_ANNOTATORS for s in per_clip):
        raise InputFileError(
            f"{origin}: 'saliency_scores' must hold one [a1, a2, a3] triple per relevant clip "
            f"(QVHighlights has {NUM_ANNOTATORS} annotators)"
        )
    scores = np.asarray(per_clip, dtype=np.float64).reshape(-1, NUM_ANNOTATORS)
    num_clips = int(row.duration / 2)
    bad = clip_ids[clip_ids >= num_clips]
    if len(bad):
        raise InputFileError(
            f"{origin}: relevant clip id {bad[0]:g} outside the video (duration {row.duration:g} s = "
            f"{num_clips} clips of 2 s: use ids 0..{num_clips - 1})"
        )
    return clip_score_matrix(row.duration, clip_ids, scores)
