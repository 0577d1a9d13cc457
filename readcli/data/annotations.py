"""One annotated query on one video, in a form shared by QVHighlights, YouTube Highlights and TVSum.

QVHighlights rows (`qid, query, duration, vid, relevant_windows, relevant_clip_ids, saliency_scores`)
are parsed here; the highlight-detection layouts in readcli/data/youtube_tvsum.py. Every row keeps its
`file:line` so that later errors still point at the line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from readcli.data.annotation_jsonl import JsonRow
from readcli.records import validate
from readcli.records.schemas_annotations import QVHighlightsRow

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
    """A QVHighlights row, validated by its schema; the labels are optional together (test splits)."""
    record = validate(QVHighlightsRow, row.data, row.where)
    common = {
        "qid": record.qid,
        "vid": str(record.vid),
        "query": record.query,
        "duration": record.duration,
        "format": "qvhighlights",
        "source": row.where,
    }
    if record.relevant_windows is None:
        return MomentAnnotation(**common)  # type: ignore[arg-type]
    clip_ids = tuple(record.relevant_clip_ids or ())
    scores = tuple(
        float(sum(s)) / len(s) if isinstance(s, list) else float(s) for s in record.saliency_scores or ()
    )
    return MomentAnnotation(
        **common,  # type: ignore[arg-type]
        windows=tuple(record.relevant_windows),
        clip_ids=clip_ids,
        clip_scores=scores,
        relevant_ids=clip_ids,
    )
