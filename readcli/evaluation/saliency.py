"""YouTube Highlights mAP and TVSum top-5 mAP, per domain and averaged over domains, as UMT defines them.

Predictions are rows `{"qid": ..., "pred_saliency_scores": [one score per clip]}` (`vid` may stand
in for `qid`; fewer scores than clips score the first clips only, as UMT does when a video's
features are shorter than its annotation); the ground truth is the dataset's jsonl (val split).
Only the domains the predictions touch are evaluated, and each of those must be predicted in full
(models are trained per domain). Values are percent with 2 decimals. Definitions: docs/evaluation.md.

Legend: V videos, N clips (padded), A annotators (TVSum: 20), K top clips kept (5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from readcli.errors import InputFileError, InvalidValueError, choices_text
from readcli.evaluation.ranking import percent, ranked_labels, ties_decide, trapezoid_ap
from readcli.evaluation.rows import Rows, RowsLike, as_rows, checked, name_some, number_array, unique_keys
from readcli.records import validate
from readcli.records.schemas_annotations import TVSumRow, YouTubeRow
from readcli.records.schemas_evaluation import HighlightPrediction

log = logging.getLogger(__name__)

SALIENCY_FIELD = "pred_saliency_scores"
ID_FIELDS = ("qid", "vid")
TVSUM_TOP_K = 5

# (ground truth rows, row index) -> (N, A) labels: binary positives, one column per annotator
LabelReader = Callable[[Rows, int], np.ndarray]
# (scores (V, N), labels (V, N, A), valid (V, N)) -> per-video AP (V,) and whether ties decide it (V,)
VideoScorer = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class HighlightEvaluation:
    """Per-domain metrics, and the videos whose value depends on the order of tied scores."""

    metrics: dict[str, float]  # <prefix>-<domain> ..., <prefix>-avg (percent)
    videos: int  # videos scored
    tie_decided: tuple[Any, ...]  # ids, in ground-truth order

    def tie_warning(self, dataset: str) -> str | None:
        """One line naming the tie-decided videos, or None when ties decide nothing."""
        if not self.tie_decided:
            return None
        cut = f"the top {TVSUM_TOP_K}" if dataset == "tvsum" else "the ranking"
        return (
            f"tied scores decide which clips enter {cut} in {len(self.tie_decided)} of {self.videos} "
            f"videos ({name_some(list(self.tie_decided))}): their AP depends on the order of tied "
            "clips; readcli ranks them in clip order, UMT's torch.argsort in no fixed order "
            "(docs/evaluation.md)"
        )


def youtube_highlight_map(predictions: RowsLike, ground_truth: RowsLike) -> dict[str, float]:
    """`mAP-<domain>` per domain and `mAP-avg` (mean over domains) of per-video highlight AP."""
    return _logged(evaluate_highlights(predictions, ground_truth, "youtube"), "youtube")


def tvsum_top5_map(predictions: RowsLike, ground_truth: RowsLike) -> dict[str, float]:
    """`top5-mAP-<domain>` per domain and `top5-mAP-avg`: top-5 AP per annotator, averaged."""
    return _logged(evaluate_highlights(predictions, ground_truth, "tvsum"), "tvsum")


def evaluate_highlights(predictions: RowsLike, ground_truth: RowsLike, dataset: str) -> HighlightEvaluation:
    """YouTube Highlights mAP or TVSum top-5 mAP, with the videos whose ties decide the ranking's cut."""
    if dataset == "youtube":
        return _per_domain(predictions, ground_truth, _youtube_labels, _youtube_videos, prefix="mAP")
    if dataset == "tvsum":
        return _per_domain(predictions, ground_truth, _tvsum_labels, _tvsum_videos, prefix="top5-mAP")
    raise InvalidValueError(
        f"highlight dataset {dataset!r} is not known: use one of {choices_text(('youtube', 'tvsum'))}"
    )


def _logged(result: HighlightEvaluation, dataset: str) -> dict[str, float]:
    warning = result.tie_warning(dataset)
    if warning is not None:
        log.warning(warning)
    return result.metrics


def _youtube_videos(
    scores: np.ndarray, labels: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ranked, _ = ranked_labels(scores, labels[..., 0], valid)  # (V, N)
    return trapezoid_ap(ranked), ties_decide(scores, labels[..., 0], valid)  # (V,), (V,)


def _tvsum_videos(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    videos, width, annotators = labels.shape
    rows = labels.transpose(0, 2, 1).reshape(videos * annotators, width)  # (V·A, N)
    row_scores = np.repeat(scores, annotators, axis=0)  # (V·A, N)
    row_valid = np.repeat(valid, annotators, axis=0)  # (V·A, N)
    ranked, _ = ranked_labels(row_scores, rows, row_valid)  # (V·A, N)
    ap = trapezoid_ap(ranked[:, :TVSUM_TOP_K])  # recall counts the positives among the top 5  # (V·A,)
    decided = ties_decide(row_scores, rows, row_valid, keep=TVSUM_TOP_K)  # (V·A,)
    per_video = decided.reshape(videos, annotators).any(-1)  # any annotator's cut  # (V,)
    return ap.reshape(videos, annotators).mean(-1), np.asarray(per_video)


def _per_domain(
    predictions: RowsLike,
    ground_truth: RowsLike,
    read_labels: LabelReader,
    per_video: VideoScorer,
    *,
    prefix: str,
) -> HighlightEvaluation:
    pred = as_rows(predictions, "predictions")
    gt = as_rows(ground_truth, "ground_truth")
    pairs = _match_videos(pred, gt)  # domain -> [(id, pred row, gt row)]
    out: dict[str, float] = {}
    domain_means, decided = [], []
    for domain in sorted(pairs):
        scores, labels = [], []
        for _, p, g in pairs[domain]:
            truth = read_labels(gt, g)  # (N, A), from every annotated clip (TVSum's medians too)
            score = number_array(pred.field(p, SALIENCY_FIELD), pred.origins[p], SALIENCY_FIELD)
            if not 0 < len(score) <= len(truth):
                raise InputFileError(
                    f"{pred.origins[p]}: {len(score)} saliency scores, but the ground truth "
                    f"({gt.origins[g]}) has {len(truth)} clips: give one score per clip (or per clip "
                    "that has features, when the features are shorter)"
                )
            # UMT's rule when a video's features are shorter than its annotation: the clips without
            # features are left out of the ranking and of the positives (docs/evaluation.md)
            scores.append(score)
            labels.append(truth[: len(score)])
        ap, tied = per_video(*_pad(scores, labels))  # (V_domain,) each
        domain_means.append(float(ap.mean()))
        out[f"{prefix}-{domain}"] = percent(domain_means[-1])
        decided += [(g, key) for (key, _, g), flag in zip(pairs[domain], tied, strict=True) if flag]
    out[f"{prefix}-avg"] = percent(float(np.mean(domain_means)))
    videos = sum(len(v) for v in pairs.values())
    return HighlightEvaluation(out, videos, tuple(key for _, key in sorted(decided, key=lambda x: x[0])))


def _match_videos(pred: Rows, gt: Rows) -> dict[str, list[tuple[Any, int, int]]]:
    """Pair prediction and ground-truth rows by id, for every video of every predicted domain."""
    checked(pred, HighlightPrediction)  # types and ranges of every row (readcli/records)
    gt_index = {key: i for i, key in enumerate(unique_keys(gt, ID_FIELDS))}
    pred_ids = unique_keys(pred, ID_FIELDS)
    unknown = [key for key in pred_ids if key not in gt_index]
    if unknown:
        raise InputFileError(
            f"predictions and ground truth ({pred.name} and {gt.name}) do not match: {len(unknown)} "
            f"predicted ids are not in the ground truth: {name_some(unknown)}; predict only its videos"
        )
    domains = {g: str(gt.field(g, "domain")) for g in gt_index.values()}
    covered = {domains[gt_index[key]] for key in pred_ids}
    pred_index = {key: p for p, key in enumerate(pred_ids)}
    missing = [key for key, g in gt_index.items() if domains[g] in covered and key not in pred_index]
    if missing:
        raise InputFileError(
            f"predictions and ground truth ({pred.name} and {gt.name}) do not match: {len(missing)} videos "
            f"of the predicted domains ({', '.join(sorted(covered))}) have no prediction: "
            f"{name_some(missing)}; predict every video of a domain"
        )
    pairs: dict[str, list[tuple[Any, int, int]]] = {}
    for key, g in gt_index.items():
        if domains[g] in covered:
            pairs.setdefault(domains[g], []).append((key, pred_index[key], g))
    return pairs


def _youtube_labels(gt: Rows, g: int) -> np.ndarray:
    """(N, 1) highlight labels: `match` > 0 as UMT reads them, else the `label` column > 0."""
    validate(YouTubeRow, gt.rows[g], gt.origins[g])  # the row's schema (readcli/records)
    key = "match" if gt.rows[g].get("match") is not None else "label"
    values = gt.field(g, key)
    if key == "label":  # stored as [[0], [1], ...]
        values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    return (number_array(values, gt.origins[g], key) > 0)[:, None]


def _tvsum_labels(gt: Rows, g: int) -> np.ndarray:
    """(N, A) positives: a clip above the annotator's median score (torch's lower median, as UMT)."""
    validate(TVSumRow, gt.rows[g], gt.origins[g])  # the row's schema (readcli/records)
    scores = number_array(gt.field(g, "label"), gt.origins[g], "label", ndim=2, width=1)  # (N, A)
    if len(scores) == 0:
        raise InputFileError(f"{gt.origins[g]}: field 'label' is empty")
    lower_median = np.sort(scores, axis=0)[(len(scores) - 1) // 2]  # (A,)
    return scores > lower_median[None, :]


def _pad(scores: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, N) scores, (V, N, A) labels and (V, N) validity, padded to the longest video."""
    width = max(len(s) for s in scores)
    annotators = labels[0].shape[1]
    if any(lab.shape[1] != annotators for lab in labels):
        raise InputFileError(f"ground truth rows disagree on the number of annotators ({annotators} first)")
    out_scores = np.zeros((len(scores), width))  # (V, N)
    out_labels = np.zeros((len(scores), width, annotators), dtype=bool)  # (V, N, A)
    valid = np.zeros((len(scores), width), dtype=bool)  # (V, N)
    for v, (s, lab) in enumerate(zip(scores, labels, strict=True)):
        out_scores[v, : len(s)] = s
        out_labels[v, : len(s)] = lab
        valid[v, : len(s)] = True
    return out_scores, out_labels, valid
