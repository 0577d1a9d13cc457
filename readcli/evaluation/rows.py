"""Reading prediction and ground-truth jsonl files for evaluation, with errors that say where.

Every row keeps its origin (`preds.jsonl:17`, or `predictions[16]` for rows handed over from Python),
so a broken line, a missing field or a value of the wrong type is reported as one line that names
the file, the line and the field. Dataset readers for training live in `readcli.data`; this module
only serves the evaluator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from readcli.errors import InputFileError
from readcli.records import Record, read_jsonl_values, validate

M = TypeVar("M", bound=Record)

_MAX_NAMED = 10  # how many offending ids an error message lists before it counts the rest


@dataclass(frozen=True)
class Rows:
    """Rows of one source (a jsonl file or a Python list) and, per row, where it came from."""

    name: str
    rows: Sequence[Mapping[str, Any]]
    origins: Sequence[str]

    def __len__(self) -> int:
        return len(self.rows)

    def field(self, index: int, key: str) -> Any:
        """Row `index`'s value for `key`; a missing key or a null is an error naming the row."""
        value = self.rows[index].get(key)
        if value is None:
            raise InputFileError(f"{self.origins[index]}: missing field {key!r}")
        return value

    def has_field(self, key: str) -> bool:
        """Whether any row carries `key` (then every row must: see `field`)."""
        return any(row.get(key) is not None for row in self.rows)


# what the evaluators accept: rows read from a file, or plain dicts from the training loop
RowsLike = Rows | Iterable[Mapping[str, Any]]


def as_rows(data: RowsLike, name: str) -> Rows:
    """Accept rows read from a file, or a plain list of dicts from the training loop."""
    if isinstance(data, Rows):
        return data
    rows = list(data)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputFileError(f"{name}[{index}]: expected an object, found {type(row).__name__}")
    return Rows(name=name, rows=rows, origins=[f"{name}[{i}]" for i in range(len(rows))])


def read_jsonl(path: str | Path) -> Rows:
    """Read a jsonl file of objects: blank lines are skipped, anything else broken is an error."""
    path = Path(path)
    rows: list[Mapping[str, Any]] = []
    origins: list[str] = []
    for number, row in read_jsonl_values(path):  # bounded nesting, no NaN/Infinity constants
        if not isinstance(row, dict):
            raise InputFileError(f"{path}:{number}: expected a JSON object, found {type(row).__name__}")
        rows.append(row)
        origins.append(f"{path}:{number}")
    if not rows:
        raise InputFileError(f"{path}: no rows (the file is empty)")
    return Rows(name=str(path), rows=rows, origins=origins)


def checked(rows: Rows, schema: type[M]) -> list[M]:
    """Every row validated by `schema` (readcli/records); the first bad one names its file:line."""
    return [validate(schema, row, origin) for row, origin in zip(rows.rows, rows.origins, strict=True)]


def number_array(value: Any, origin: str, key: str, *, ndim: int = 1, width: int | None = None) -> np.ndarray:
    """A list (ndim 1) or a list of rows of at least `width` numbers (ndim 2), finite, as float64.

    An empty list is accepted (shape (0,) or (0, width)); strings and booleans are not numbers here.
    """
    what = "a list of numbers" if ndim == 1 else f"a list of [{width or 'n'} numbers] lists"
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):  # ragged nesting
        raw = None
    if raw is not None and raw.size == 0 and raw.ndim in (1, ndim):
        return np.zeros((0,) if ndim == 1 else (0, width or 0))
    if (
        raw is None
        or raw.ndim != ndim
        or raw.dtype.kind not in "iuf"  # not strings, not booleans
        or (width is not None and raw.shape[-1] < width)
    ):
        raise InputFileError(f"{origin}: field {key!r} must be {what}, found {_preview(value)}")
    array = raw.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputFileError(f"{origin}: field {key!r} holds a NaN or infinite value")
    return array


def unique_keys(rows: Rows, key_fields: Sequence[str]) -> list[Any]:
    """Each row's id (the first of `key_fields` it has), checked to be unique across the source."""
    keys: list[Any] = []
    first_seen: dict[Any, str] = {}
    for index, row in enumerate(rows.rows):
        field = next((k for k in key_fields if row.get(k) is not None), None)
        key = row[field] if field is not None else None
        if key is None:
            names = " or ".join(repr(k) for k in key_fields)
            raise InputFileError(f"{rows.origins[index]}: missing field {names}")
        if isinstance(key, list | dict | float):
            raise InputFileError(f"{rows.origins[index]}: id {_preview(key)} must be a string or an integer")
        if key in first_seen:
            raise InputFileError(
                f"{rows.origins[index]}: duplicate id {key!r} (first at {first_seen[key]}): "
                f"each {field} must appear once"
            )
        first_seen[key] = rows.origins[index]
        keys.append(key)
    return keys


def check_same_ids(
    pred_ids: Iterable[Any],
    gt_ids: Iterable[Any],
    *,
    what: str = "qids",
    truth: str = "ground truth",
    sources: tuple[str, str] | None = None,
) -> None:
    """Predictions and ground truth must cover the same ids; name the ones that differ (and the files)."""
    pred_set, gt_set = set(pred_ids), set(gt_ids)
    if pred_set == gt_set:
        return
    parts = []
    missing = _sorted_ids(gt_set - pred_set)
    extra = _sorted_ids(pred_set - gt_set)
    if missing:
        parts.append(f"{len(missing)} {what} in the {truth} have no prediction: {name_some(missing)}")
    if extra:
        parts.append(f"{len(extra)} predicted {what} are not in the {truth}: {name_some(extra)}")
    named = f" ({sources[0]} and {sources[1]})" if sources is not None else ""
    raise InputFileError(
        f"predictions and {truth}{named} do not match: {'; '.join(parts)}; "
        f"give one prediction for each of the {truth}'s {what}"
    )


def _sorted_ids(ids: set[Any]) -> list[Any]:
    try:
        return sorted(ids)  # numeric order for integer qids
    except TypeError:  # a mix of types
        return sorted(ids, key=str)


def name_some(items: Sequence[Any]) -> str:
    """'a, b, c' for a few items; the first ten and a count of the rest for many."""
    shown = ", ".join(str(item) for item in items[:_MAX_NAMED])
    rest = len(items) - _MAX_NAMED
    return f"{shown} and {rest} more" if rest > 0 else shown


def _preview(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not (isinstance(value, float) and math.isnan(value)) else "NaN"
    return text if len(text) <= limit else text[: limit - 3] + "..."
