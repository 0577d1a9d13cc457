"""Reading annotation jsonl files: one JSON object per line, every problem reported as file:line.

Blank lines are skipped (many releases end with one). Field accessors name the field, the row's
location and what was expected, so a broken annotation file is fixed without a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from readcli.errors import InputFileError
from readcli.records import parse_json

_MISSING = object()


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float, not a bool (JSON true/false are bools; Python's json reads NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class JsonRow:
    """One parsed jsonl line and where it came from."""

    data: dict[str, Any]
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def has(self, name: str) -> bool:
        """True when the field is present and not null."""
        return self.data.get(name) is not None

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        value = self.data.get(name)
        if value is None:
            if default is not _MISSING:
                return default
            present = ", ".join(sorted(self.data)) or "none"
            raise InputFileError(f"{self.where}: missing field {name!r} (fields present: {present})")
        return value

    def text(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise InputFileError(f"{self.where}: field {name!r} must be a string, found {value!r:.60}")
        return value

    def identifier(self, name: str) -> int | str:
        """An id field: an int or a non-empty string, kept as given (QVHighlights qids are ints)."""
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            raise InputFileError(
                f"{self.where}: field {name!r} must be an integer or a non-empty string, found {value!r:.60}"
            )
        return value

    def number(self, name: str, *, positive: bool = False) -> float:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputFileError(f"{self.where}: field {name!r} must be a finite number, found {value!r:.60}")
        if positive and value <= 0:
            raise InputFileError(f"{self.where}: field {name!r} must be positive, found {value}")
        return float(value)

    def list_of(self, name: str, default: Any = _MISSING) -> list[Any]:
        value = self.raw(name, default)
        if not isinstance(value, list):
            raise InputFileError(f"{self.where}: field {name!r} must be a list, found {value!r:.60}")
        return value

    def fail(self, message: str) -> InputFileError:
        """An error about this row: `file:line: message`."""
        return InputFileError(f"{self.where}: {message}")


def read_jsonl(path: str | Path) -> list[JsonRow]:
    """Read every non-blank line of `path` as a JSON object; refuse an unreadable or empty file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"annotation file not found: {path}")
    rows: list[JsonRow] = []
    try:
        with path.open("r", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                rows.append(_parse_line(line, path, line_no))
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from None
    if not rows:
        raise InputFileError(f"{path}: contains no rows")
    return rows


def _parse_line(line: str, path: Path, line_no: int) -> JsonRow:
    data = parse_json(line, f"{path}:{line_no}")  # bounded nesting, no NaN/Infinity constants
    if not isinstance(data, dict):
        raise InputFileError(f"{path}:{line_no}: expected a JSON object, found {type(data).__name__}")
    return JsonRow(data=data, path=path, line=line_no)


def check_unique(rows: Iterable[JsonRow], field: str) -> None:
    """Refuse two rows with the same value of `field`, naming the value and both lines."""
    seen: dict[str, JsonRow] = {}
    for row in rows:
        value = row.data.get(field)
        key = str(value)  # 7 and "7" name the same feature file, so they collide too
        first = seen.get(key)
        if first is not None:
            second = f"line {row.line}" if row.path == first.path else row.where
            raise InputFileError(
                f"duplicate {field} {value!r}: {first.where} and {second} (each {field} must appear once)"
            )
        seen[key] = row
