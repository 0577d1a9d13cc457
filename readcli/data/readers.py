"""Load an annotation jsonl file of any supported layout into `MomentAnnotation`s.

The layout is read from the rows unless given: a `match` field means YouTube Highlights, a `label`
field without `match` means TVSum, anything else is QVHighlights. Duplicate qids are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from readcli.data.annotation_jsonl import JsonRow, check_unique, read_jsonl
from readcli.data.annotations import FORMATS, AnnotationFormat, MomentAnnotation, parse_qvhighlights_row
from readcli.data.youtube_tvsum import parse_tvsum_row, parse_youtube_row
from readcli.errors import InvalidValueError, choices_text

PARSERS: dict[str, Callable[[JsonRow], MomentAnnotation]] = {
    "qvhighlights": parse_qvhighlights_row,
    "youtube_highlights": parse_youtube_row,
    "tvsum": parse_tvsum_row,
}


def detect_format(row: JsonRow) -> AnnotationFormat:
    """Which layout a row is in, from its fields."""
    if row.has("match"):
        return "youtube_highlights"
    if row.has("label") and row.has("domain"):
        label = row.data["label"]
        first = label[0] if isinstance(label, list) and label else None
        # YouTube's `label` is [[0/1]] per clip; TVSum's has one score per annotator
        return "youtube_highlights" if isinstance(first, list) and len(first) == 1 else "tvsum"
    return "qvhighlights"


def load_annotations(path: str | Path, *, fmt: str | None = None) -> list[MomentAnnotation]:
    """Every row of `path`, parsed and validated; errors name file:line and the field."""
    rows = read_jsonl(path)
    if fmt is None:
        fmt = detect_format(rows[0])
    parser = PARSERS.get(fmt)
    if parser is None:
        raise InvalidValueError(f"unknown annotation format {fmt!r}; choices: {choices_text(FORMATS)}")
    check_unique(rows, "qid")
    return [parser(row) for row in rows]
