"""Reading queries to encode: a jsonl file whose rows carry `qid` and `query` (QVHighlights layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from readcli.errors import InputFileError

_SAFE_QID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(frozen=True)
class Query:
    qid: str
    text: str

    @property
    def file_stem(self) -> str:
        return f"qid{self.qid}"


def read_queries(path: str | Path) -> list[Query]:
    """Rows with `qid` and `query`, in qid order; a malformed row names its line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"--queries {path}: file not found")
    seen: dict[str, Query] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise InputFileError(f"--queries {path}, line {number}: not JSON ({err.args[0]})") from None
            if not isinstance(row, dict) or "qid" not in row or "query" not in row:
                raise InputFileError(f"--queries {path}, line {number}: a row needs 'qid' and 'query' fields")
            qid, text = str(row["qid"]), row["query"]
            if not qid or not set(qid) <= _SAFE_QID:
                raise InputFileError(
                    f"--queries {path}, line {number}: qid {qid!r} must use letters, digits, '_', '-' or '.'"
                )
            if not isinstance(text, str):
                raise InputFileError(
                    f"--queries {path}, line {number}: query must be a string, found {text!r}"
                )
            if qid in seen and seen[qid].text != text:
                raise InputFileError(
                    f"--queries {path}, line {number}: qid {qid} appears twice with different text"
                )
            seen[qid] = Query(qid, text)
    if not seen:
        raise InputFileError(f"--queries {path}: no rows")
    return sorted(seen.values(), key=lambda q: (len(q.qid), q.qid))
