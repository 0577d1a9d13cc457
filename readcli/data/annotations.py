"""One annotated query on one video, in a form shared by QVHighlights, YouTube Highlights and TVSum.

QVHighlights rows (`qid, query, duration, vid, relevant_windows, relevant_clip_ids, saliency_scores`)
are parsed here; the highlight-detection layouts in readcli/data/highlights.py. Every row keeps its
`file:line` so that later errors still point at the line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from readcli.data.jsonl import JsonRow, is_number

AnnotationFormat = Literal["qvhighlights", "youtube_highlights", "tvsum"]
FORMATS: tuple[AnnotationFormat, ...] = ("qvhighlights", "youtube_highlights", "tvsum")


@dataclass(frozen=True)
class MomentAnnotation:
    """A query and its labels. Clip indices count clips of the video's feature rows from 0."""

    qid: int | str
    vid: str
    query: str
    duration: float  # seconds
    format: AnnotationFormat
    source: str  # "file:line"
    # relevant moments in seconds; None for a row without labels (a test split), () for none
    windows: tuple[tuple[float, float], ...] | None = None
    # clips with a saliency score and that score (the mean over annotators)
    clip_ids: tuple[int, ...] = ()
    clip_scores: tuple[float, ...] = ()
    # clips that count as relevant: easy positives are drawn from them, easy negatives from the rest
    relevant_ids: tuple[int, ...] = ()
    # how many clips the labels cover (highlight datasets); None when only the features tell
    num_clips: int | None = None
    domain: str | None = None

    @property
    def has_labels(self) -> bool:
        return self.windows is not None or bool(self.clip_ids)

    @property
    def key(self) -> str:
        """Identity for sub-sampling and duplicate checks."""
        return str(self.qid)


def parse_qvhighlights_row(row: JsonRow) -> MomentAnnotation:
    """A QVHighlights row; the label fields are optional together (test splits ship without them)."""
    qid = row.identifier("qid")
    common = {
        "qid": qid,
        "vid": str(row.identifier("vid")),
        "query": row.text("query"),
        "duration": row.number("duration", positive=True),
        "format": "qvhighlights",
        "source": row.where,
    }
    if not row.has("relevant_windows"):
        return MomentAnnotation(**common)  # type: ignore[arg-type]
    windows = _windows(row)
    clip_ids: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    if row.has("relevant_clip_ids"):
        clip_ids = _clip_ids(row, "relevant_clip_ids")
        scores = _mean_scores(row, "saliency_scores", len(clip_ids))
    return MomentAnnotation(
        **common,  # type: ignore[arg-type]
        windows=windows,
        clip_ids=clip_ids,
        clip_scores=scores,
        relevant_ids=clip_ids,
    )


def _windows(row: JsonRow) -> tuple[tuple[float, float], ...]:
    windows = []
    for index, window in enumerate(row.list_of("relevant_windows")):
        if not isinstance(window, list | tuple) or len(window) != 2 or not all(is_number(v) for v in window):
            raise row.fail(f"relevant_windows[{index}] must be [start, end] in seconds, found {window!r:.60}")
        start, end = float(window[0]), float(window[1])
        if end < start or start < 0:
            raise row.fail(f"relevant_windows[{index}] = [{start:g}, {end:g}]: need 0 <= start <= end")
        windows.append((start, end))
    return tuple(windows)


def _clip_ids(row: JsonRow, name: str) -> tuple[int, ...]:
    ids = row.list_of(name)
    for index, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise row.fail(f"{name}[{index}] must be a clip index >= 0, found {value!r:.40}")
    if len(set(ids)) != len(ids):
        repeated = sorted({v for v in ids if ids.count(v) > 1})
        raise row.fail(f"{name} lists clip {repeated[0]} more than once")
    return tuple(ids)


def rectangular_means(per_clip: list[object]) -> tuple[float, ...] | None:
    """Row means of a clean (clips, annotators) number matrix, or None to take the checking path.

    The common case in one numpy call (the per-value checks cost seconds on QVHighlights' train).
    """
    try:
        matrix = np.asarray(per_clip)
    except ValueError:  # ragged
        return None
    if matrix.ndim != 2 or matrix.shape[1] == 0 or matrix.dtype.kind not in "iuf":
        return None
    if not np.isfinite(matrix).all():
        return None
    # numpy turns true/false into 1/0 next to numbers; the checking path refuses them
    if any(v is True or v is False for clip in per_clip for v in clip):  # type: ignore[attr-defined]
        return None
    return tuple(matrix.mean(axis=1).tolist())


def _mean_scores(row: JsonRow, name: str, expected: int) -> tuple[float, ...]:
    """Per clip, the mean of its annotators' scores (a list of numbers per clip)."""
    per_clip = row.list_of(name)
    if len(per_clip) != expected:
        raise row.fail(f"{name} has {len(per_clip)} entries but relevant_clip_ids has {expected}")
    fast = rectangular_means(per_clip)
    if fast is not None:
        return fast
    means = []
    for index, scores in enumerate(per_clip):
        if is_number(scores):
            scores = [scores]  # one annotator given as a bare number
        if not isinstance(scores, list) or not scores or not all(is_number(s) for s in scores):
            raise row.fail(
                f"{name}[{index}] must be a list of numbers (one per annotator), found {scores!r:.60}"
            )
        means.append(float(sum(scores)) / len(scores))
    return tuple(means)
