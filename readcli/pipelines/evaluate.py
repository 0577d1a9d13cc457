"""`readcli evaluate`: score a prediction file against ground truth (grounding) or references (summaries).

A typed request in, a typed result out: `metrics` is the flat table the CLI shows, `report` what
`--json` prints (for QVHighlights the official evaluator's whole output, `brief` first), `warnings`
one line each for the CLI (YouTube / TVSum: the videos whose ties decide the ranking's cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.errors import InvalidValueError, choices_text
from readcli.evaluation import (
    SUMMARY_FORMATS,
    pair_summaries,
    qvhighlights_report,
    read_jsonl,
    read_summary_file,
    rouge_scores,
)
from readcli.evaluation.saliency import evaluate_highlights

TIE_FIELD = "tie_decided"  # --json field (YouTube, TVSum): ids of videos whose ties decide the cut
TASKS = ("tlg", "vls")  # temporal language grounding, video-language summarization
DATASETS = ("qvhighlights", "youtube", "tvsum")  # grounding datasets (--dataset)


@dataclass(frozen=True)
class EvaluateRequest:
    """What to score: `gt` and `dataset` for tlg, `refs` and `summary_format` for vls."""

    task: str
    preds: Path
    gt: Path | None = None
    refs: Path | None = None
    dataset: str | None = None  # tlg only; qvhighlights when None
    summary_format: str = "auto"  # vls only: auto, plain or how2


@dataclass(frozen=True)
class EvaluateResult:
    task: str
    dataset: str  # qvhighlights, youtube, tvsum, or the summary layout used (plain, how2)
    count: int  # queries, videos or summary pairs scored
    metrics: dict[str, float]
    report: dict[str, Any]
    warnings: tuple[str, ...] = ()  # one line each, for the CLI to show


def evaluate(request: EvaluateRequest) -> EvaluateResult:
    """Validate the request's combination of options, read the files, compute the metrics."""
    if request.task not in TASKS:
        raise InvalidValueError(f"--task {request.task!r} is not a task: use one of {choices_text(TASKS)}")
    if request.task == "tlg":
        return _grounding(request)
    return _summaries(request)


def _grounding(request: EvaluateRequest) -> EvaluateResult:
    if request.gt is None:
        raise InvalidValueError("--task tlg needs --gt (the ground-truth jsonl)")
    if request.refs is not None:
        raise InvalidValueError("--refs is for --task vls; --task tlg takes --gt")
    dataset = request.dataset or "qvhighlights"
    if dataset not in DATASETS:
        raise InvalidValueError(f"--dataset {dataset!r} is not known: use one of {choices_text(DATASETS)}")
    preds, gt = read_jsonl(request.preds), read_jsonl(request.gt)
    if dataset == "qvhighlights":
        report = qvhighlights_report(preds, gt)
        return EvaluateResult("tlg", dataset, len(preds), dict(report["brief"]), report)
    result = evaluate_highlights(preds, gt, dataset)
    ranked: dict[str, Any] = {**result.metrics, TIE_FIELD: list(result.tie_decided)}
    warning = result.tie_warning(dataset)
    return EvaluateResult(
        "tlg", dataset, len(preds), result.metrics, ranked, () if warning is None else (warning,)
    )


def _summaries(request: EvaluateRequest) -> EvaluateResult:
    if request.refs is None:
        raise InvalidValueError("--task vls needs --refs (the reference summaries, one per line)")
    if request.gt is not None or request.dataset is not None:
        raise InvalidValueError("--gt and --dataset are for --task tlg; --task vls takes --refs")
    if request.summary_format not in SUMMARY_FORMATS:
        raise InvalidValueError(
            f"--format {request.summary_format!r} is not valid: use one of {choices_text(SUMMARY_FORMATS)}"
        )
    preds, refs = read_summary_file(request.preds), read_summary_file(request.refs)
    pred_texts, ref_texts, layout = pair_summaries(preds, refs, summary_format=request.summary_format)
    metrics = rouge_scores(pred_texts, ref_texts)
    return EvaluateResult("vls", layout, len(ref_texts), metrics, dict(metrics))
