"""JSON text to Python values, refusing what the standard library would choke or lie on.

`json.loads` recurses once per nesting level, so a file nested 200,000 deep raises RecursionError;
it also accepts the non-standard constants NaN and Infinity. Both are refused here while or right
after parsing (the depth of what was parsed is checked without recursion), as an InputFileError
naming the file (and line, for JSONL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError

# No record readcli reads nests deeper than a handful of levels; 64 leaves room and stays far below
# Python's recursion limit.
MAX_DEPTH = 64
# The largest JSON/JSONL file readcli reads at once (annotation releases are tens of MB).
MAX_BYTES = 2 * 1024**3


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """The nesting depth of a parsed JSON value (a scalar is 0), level by level without recursion;
    stops once past `limit`. json.loads makes only dicts and lists, so exact type tests suffice."""
    depth = 0
    level = [value] if type(value) is dict or type(value) is list else []
    while level and depth <= limit:
        depth += 1
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is list or type(child) is dict:
                    below.append(child)
        level = below
    return depth


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the non-standard constant {name} (JSON numbers must be finite)")


def parse_json(text: str, where: str) -> Any:
    """Parse JSON text; `where` names it in errors ("file" or "file:line")."""
    too_deep = InputFileError(
        f"{where}: JSON nested deeper than {MAX_DEPTH} levels (readcli's records are flat)"
    )
    try:
        # json's C scanner stops at Python's recursion limit with a RecursionError, safely; anything
        # it returns is then checked against MAX_DEPTH without recursion
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep from None
    except json.JSONDecodeError as err:
        raise InputFileError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from None
    except ValueError as err:  # _refuse_constant, or an integer too long to convert
        raise InputFileError(f"{where}: not valid JSON ({err})") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise too_deep
    return value


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
