"""Reading queries to encode: a jsonl file whose rows carry `qid` and `query` (QVHighlights layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from readcli.errors import InputFileError
from readcli.records import read_jsonl_values, validate
from readcli.records.schemas_config import QueryRow

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
    try:
        values = read_jsonl_values(path)  # bounded nesting; not UTF-8 is one line
    except InputFileError as err:
        raise InputFileError(f"--queries {err}") from None
    for number, value in values:
        where = f"--queries {path}:{number}"
        if not isinstance(value, dict):
            raise InputFileError(f"{where}: expected a JSON object with 'qid' and 'query' fields")
        row = validate(QueryRow, value, where)
        qid, text = str(row.qid), row.query
        if not set(qid) <= _SAFE_QID:
            raise InputFileError(f"{where}: qid {qid!r} must use letters, digits, '_', '-' or '.'")
        if qid in seen and seen[qid].text != text:
            raise InputFileError(f"{where}: qid {qid} appears twice with different text")
        seen[qid] = Query(qid, text)
    if not seen:
        raise InputFileError(f"--queries {path}: no rows")
    return sorted(seen.values(), key=lambda q: (len(q.qid), q.qid))
