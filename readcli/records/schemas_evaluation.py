"""Schemas of prediction rows for `evaluate` (ground truth uses the annotation schemas).

A moment prediction is `{qid, pred_relevant_windows: [[start, end, score], ...], pred_saliency_scores:
[one score per clip]}` (the official QVHighlights layout); a highlight prediction carries `qid` or
`vid` and `pred_saliency_scores`. Other fields (query, vid) are ignored, as the official evaluator
does. Windows may be empty (start = end: the official post-processing rounds to 2-s multiples) but
never reversed or negative; how far past the video a window may reach is checked against the ground
truth's duration by the evaluator (readcli/evaluation/qvhighlights.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from readcli.records.validate import MAX_CLIPS, Finite, Id, Record, Seconds


def _not_reversed(window: tuple[float, float, float]) -> tuple[float, float, float]:
    if window[1] < window[0]:
        raise ValueError("a window must be [start, end, score] with start <= end")
    return window


PredictedWindow = Annotated[tuple[Seconds, Seconds, Finite], AfterValidator(_not_reversed)]


class MomentPrediction(Record):
    """One QVHighlights prediction row; the evaluator needs windows, saliency, or both."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: Id
    pred_relevant_windows: list[PredictedWindow] | None = Field(default=None, max_length=MAX_CLIPS)
    pred_saliency_scores: list[Finite] | None = Field(default=None, max_length=MAX_CLIPS)


class HighlightPrediction(Record):
    """One YouTube Highlights / TVSum prediction row: an id (`qid` or `vid`) and per-clip scores."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: Id | None = None
    vid: Id | None = None
    pred_saliency_scores: Annotated[list[Finite], Field(min_length=1, max_length=MAX_CLIPS)]

    @model_validator(mode="after")
    def _has_id(self) -> HighlightPrediction:
        if self.qid is None and self.vid is None:
            raise ValueError("missing field 'qid' or 'vid'")
        return self
