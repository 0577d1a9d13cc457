"""JSON text to Python values, refusing what the standard library would choke or lie on.

`json.loads` recurses once per nesting level, so a file nested 200,000 deep raises RecursionError;
it also accepts the non-standard constants NaN and Infinity. Both are refused here before or while
parsing, as an InputFileError naming the file (and line, for JSONL).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError

# No record readcli reads nests deeper than a handful of levels; 64 leaves room and stays far below
# Python's recursion limit.
MAX_DEPTH = 64
# The largest JSON/JSONL file readcli reads at once (annotation releases are tens of MB).
MAX_BYTES = 2 * 1024**3

_BRACKETS_OR_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, ignoring brackets inside strings (linear time)."""
    depth = deepest = 0
    for match in _BRACKETS_OR_STRINGS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:  # stop early: the rest cannot make it acceptable
                return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the non-standard constant {name} (JSON numbers must be finite)")


def parse_json(text: str, where: str) -> Any:
    """Parse JSON text; `where` names it in errors ("file" or "file:line")."""
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise InputFileError(
            f"{where}: JSON nested deeper than {MAX_DEPTH} levels (readcli's records are flat)"
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from None
    except ValueError as err:  # _refuse_constant, or an integer too long to convert
        raise InputFileError(f"{where}: not valid JSON ({err})") from None


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputFileError(f"file not found: {path}")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputFileError(f"{path}: larger than {MAX_BYTES // 1024**3} GiB, not a readcli record file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from None


def read_json_file(path: str | Path) -> Any:
    """One JSON document from a file."""
    path = Path(path)
    return parse_json(_read_text(path), str(path))


def read_jsonl_values(path: str | Path) -> list[tuple[int, Any]]:
    """(line number, value) for every non-blank line of a JSONL file."""
    path = Path(path)
    return [
        (number, parse_json(line, f"{path}:{number}"))
        for number, line in enumerate(_read_text(path).splitlines(), start=1)
        if line.strip()
    ]
