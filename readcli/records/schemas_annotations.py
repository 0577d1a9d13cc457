"""Schemas of annotation rows: QVHighlights, YouTube Highlights and TVSum (training data and ground truth).

One declarative model per layout. Fields the layout does not use are ignored (releases carry extra
bookkeeping fields, e.g. TVSum's null `relevant_windows`); the fields it uses are checked for type
and range: ids are plain file names (they become `{vid}.npz`), times are finite seconds inside the
video, windows run forward, scores lie in the layout's documented range. docs/data.md lists them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, Strict, model_validator

from readcli.records.validate import (
    MAX_CLIPS,
    MAX_SECONDS,
    ClipIndex,
    Duration,
    Finite,
    Id,
    Record,
    Seconds,
    Text,
)

# QVHighlights' annotators score each clip 0 (very bad) .. 4 (very good); TVSum's 1 .. 5.
QVH_SCORE_RANGE = (0.0, 4.0)
TVSUM_SCORE_RANGE = (1.0, 5.0)

QvhScore = Annotated[float, Strict(), Field(ge=QVH_SCORE_RANGE[0], le=QVH_SCORE_RANGE[1])]
TvsumScore = Annotated[float, Strict(), Field(ge=TVSUM_SCORE_RANGE[0], le=TVSUM_SCORE_RANGE[1])]
Binary = Annotated[int, Strict(), Field(ge=0, le=1)]
Match = Annotated[int, Strict(), Field(ge=-1, le=1)]  # 1 highlight, 0 not, -1 not a segment either
Frame = Annotated[float, Strict(), Field(ge=0, le=MAX_CLIPS * 1000)]


def _forward(window: tuple[float, float]) -> tuple[float, float]:
    if not window[0] < window[1]:
        raise ValueError("a window must be [start, end] with start < end")
    return window


Window = Annotated[tuple[Seconds, Seconds], AfterValidator(_forward)]


def _distinct(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        repeated = sorted({v for v in ids if ids.count(v) > 1})
        raise ValueError(f"lists clip {repeated[0]} more than once")
    return ids


ClipIds = Annotated[list[ClipIndex], Field(max_length=MAX_CLIPS), AfterValidator(_distinct)]


class AnnotationRow(Record):
    """Fields every layout shares. Unused fields are ignored, not refused (releases carry extras)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: Id


class QVHighlightsTruth(Record):
    """What the QVHighlights evaluator reads of a ground-truth row: qid, duration and the labels."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: Id
    duration: Duration
    relevant_windows: list[Window] | None = Field(default=None, max_length=MAX_CLIPS)
    relevant_clip_ids: ClipIds | None = None
    # per clip, one score per annotator (a bare number is one annotator)
    saliency_scores: list[QvhScore | Annotated[list[QvhScore], Field(min_length=1)]] | None = Field(
        default=None, max_length=MAX_CLIPS
    )

    @model_validator(mode="after")
    def _consistent(self) -> QVHighlightsTruth:
        for index, (_, end) in enumerate(self.relevant_windows or ()):
            if end > self.duration:
                raise ValueError(
                    f"relevant_windows[{index}] ends at {end:g} s, after the video's duration "
                    f"{self.duration:g} s: windows must lie inside the video"
                )
        ids, scores = self.relevant_clip_ids, self.saliency_scores
        if ids is not None and scores is not None and len(ids) != len(scores):
            raise ValueError(
                f"saliency_scores has {len(scores)} entries but relevant_clip_ids has {len(ids)}: "
                "give one entry per relevant clip"
            )
        if ids is not None and scores is None:
            raise ValueError("relevant_clip_ids needs saliency_scores (one entry per clip)")
        return self


class QVHighlightsRow(QVHighlightsTruth):
    """A training row: `qid, query, duration, vid` and, together, the labels (test splits have none)."""

    vid: Id
    query: Text


class YouTubeRow(AnnotationRow):
    """YouTube Highlights: per clip `match` (or `label` [[0/1]]), a duration or frames and fps."""

    vid: Id | None = None  # the evaluator needs only qid; the training data reader requires vid
    query: Text | None = None
    domain: Id
    duration: Duration | None = None
    frames: Frame | None = None
    fps: Annotated[float, Strict(), Field(gt=0, le=1000)] | None = None
    match: list[Match] | None = Field(default=None, max_length=MAX_CLIPS)
    label: list[Binary | Annotated[list[Binary], Field(min_length=1, max_length=1)]] | None = Field(
        default=None, max_length=MAX_CLIPS
    )
    clip: list[tuple[Frame, Frame]] | None = Field(default=None, max_length=MAX_CLIPS)

    @model_validator(mode="after")
    def _consistent(self) -> YouTubeRow:
        per_clip = self.match if self.match is not None else self.label
        if not per_clip:
            raise ValueError("'match' has no clips: give one label per clip")
        if self.clip is not None and len(self.clip) != len(per_clip):
            raise ValueError(f"'clip' lists {len(self.clip)} clips but 'match' has {len(per_clip)}")
        seconds = self.seconds()
        if seconds is not None and not 0 < seconds <= MAX_SECONDS:
            raise ValueError("frames / fps must be a duration in (0, 86400] seconds")
        return self

    def targets(self) -> list[float]:
        """Per clip, 1.0 for a highlight (`match` > 0) and 0.0 otherwise (UMT's binary saliency)."""
        if self.match is not None:
            return [1.0 if m > 0 else 0.0 for m in self.match]
        labels = [v[0] if isinstance(v, list) else v for v in self.label or ()]
        return [1.0 if v > 0 else 0.0 for v in labels]

    def seconds(self) -> float | None:
        """`duration`, else frames / fps; None when the row has neither (the evaluator needs none)."""
        if self.duration is not None:
            return self.duration
        if self.frames is None or self.fps is None:
            return None
        return self.frames / self.fps


def _rectangular(rows: list[list[float]]) -> list[list[float]]:
    if not rows:
        raise ValueError("has no clips: give one list of annotator scores per 2-s clip")
    width = len(rows[0])
    for index, scores in enumerate(rows):
        if len(scores) != width:
            raise ValueError(f"label[{index}] has {len(scores)} annotator scores, label[0] has {width}")
    return rows


class TVSumRow(AnnotationRow):
    """TVSum: per 2-s clip the annotators' 1..5 scores (`duration` in the release counts clips)."""

    vid: Id | None = None  # the evaluator needs only qid; the training data reader requires vid
    query: Text | None = None
    domain: Id
    label: Annotated[
        list[Annotated[list[TvsumScore], Field(min_length=1, max_length=1000)]],
        Field(max_length=MAX_CLIPS),
        AfterValidator(_rectangular),
    ]


__all__ = ["Finite", "QVHighlightsRow", "QVHighlightsTruth", "TVSumRow", "Window", "YouTubeRow"]
