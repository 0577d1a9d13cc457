"""Reading prediction and reference summary files and pairing them, by line or by How2 video id.

Two layouts: "plain", one summary per line, the two files in the same order; "how2", lines
`<video_id> <text>`, paired by id in any order. "auto" picks how2 when both files look id-keyed
(rule in `looks_id_keyed`, documented in docs/evaluation.md), plain otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from readcli.errors import InputFileError, InvalidValueError, choices_text
from readcli.evaluation.rows import check_same_ids

SUMMARY_FORMATS = ("auto", "plain", "how2")
_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_ID_MARK = re.compile(r"[0-9_-]|.[A-Z]")  # a digit, '_' or '-', or a capital after the first letter
_ID_SHARE = 0.9  # share of first tokens that must look like ids (random YouTube ids can be plain)


@dataclass(frozen=True)
class SummaryFile:
    """The lines of one summary file (trailing blank lines dropped); line i is on line i + 1."""

    path: str
    lines: Sequence[str]


def read_summary_file(path: str | Path) -> SummaryFile:
    """Read a UTF-8 text file of summaries; a missing or empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read as UTF-8 text ({err})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputFileError(f"{path}: no summaries (the file is empty)")
    return SummaryFile(str(path), lines)


def looks_id_keyed(lines: Sequence[str]) -> bool:
    """Whether every non-blank line starts with a distinct id-like token.

    Id-like: letters, digits, '_' and '-' only; and at least 90 % of them carry a digit, '_', '-'
    or an inner capital (YouTube ids do; the first words of sentences almost never all do).
    """
    firsts = [line.split(maxsplit=1)[0] for line in lines if line.strip()]
    if not firsts or len(set(firsts)) != len(firsts):
        return False
    if not all(_ID_CHARS.fullmatch(token) for token in firsts):
        return False
    marked = sum(1 for token in firsts if _ID_MARK.search(token))
    return marked >= _ID_SHARE * len(firsts)


def pair_summaries(
    predictions: SummaryFile, references: SummaryFile, *, summary_format: str = "auto"
) -> tuple[list[str], list[str], str]:
    """(prediction texts, reference texts, format used), paired in the references' order."""
    if summary_format not in SUMMARY_FORMATS:
        raise InvalidValueError(
            f"summary format {summary_format!r} is not valid: use one of {choices_text(SUMMARY_FORMATS)}"
        )
    if summary_format == "auto":
        summary_format = _detect_format(predictions, references)
    if summary_format == "plain":
        if len(predictions.lines) != len(references.lines):
            raise InputFileError(
                f"{predictions.path} has {len(predictions.lines)} summaries but {references.path} has "
                f"{len(references.lines)}: give one summary per line in the same order "
                "(or How2 '<video_id> <text>' lines)"
            )
        return (
            [line.strip() for line in predictions.lines],
            [line.strip() for line in references.lines],
            "plain",
        )
    pred_by_id = _by_id(predictions)
    ref_by_id = _by_id(references)
    check_same_ids(pred_by_id, ref_by_id, what="video ids", truth="references")
    return [pred_by_id[key] for key in ref_by_id], list(ref_by_id.values()), "how2"


def _detect_format(predictions: SummaryFile, references: SummaryFile) -> str:
    """how2 when both files look id-keyed, plain when neither does; one of each is an error."""
    keyed = {f.path: looks_id_keyed(f.lines) for f in (predictions, references)}
    if all(keyed.values()):
        return "how2"
    if not any(keyed.values()):
        return "plain"
    looks, other = sorted(keyed, key=lambda path: not keyed[path])
    raise InputFileError(
        f"{looks} looks like How2 '<video_id> <text>' lines but {other} does not: "
        "choose the format explicitly (--format plain or how2)"
    )


def _by_id(summaries: SummaryFile) -> dict[str, str]:
    """`<video_id> <text>` lines as {id: text}; blank lines skipped, a repeated id is an error."""
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(summaries.lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        key = parts[0]
        if key in texts:
            raise InputFileError(
                f"{summaries.path}:{number}: video id {key!r} repeated (first on line {first_line[key]})"
            )
        texts[key] = parts[1].strip() if len(parts) > 1 else ""
        first_line[key] = number
    return texts
