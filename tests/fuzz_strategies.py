"""Hypothesis strategies for the fuzz tests: hostile JSON values, mutated records, damaged files, arrays.

A mutation starts from a valid record (a real row of the shared data or a file readcli wrote) and
changes one thing a hostile user would: drop or rename a field, put a value of the wrong type or an
extreme number (NaN, inf, 1e308, -1, 10**12) in its place, reverse a window, nest deeply. File-level
damage: random bytes, truncation, an empty file, deep nesting, a byte-order mark, a repeated line.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

HOSTILE_SCALARS: list[Any] = [
    None, True, False, "", "yes", "../../etc/passwd", "a/b", "..", ".", "x\ny", "\x00", "NaN", "\ud800",
    "a" * 300,
    0, -1, 1, 2, 1.5, -0.0, 1e-300, 1e300, -1e308, 1e308, 10**12, -(10**12), 2**63, 10**400,
    math.nan, math.inf, -math.inf, [], {}, [[]], [1, 2, 3], [[1, 2, 3]], {"a": 1},
]  # fmt: skip

json_scalars = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = (), limit: int = 400) -> list[tuple[Any, ...]]:
    """Every path into `value` (dict keys and list indices), breadth-limited for long lists."""
    found: list[tuple[Any, ...]] = [prefix]
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))[:8] + list(enumerate(value))[-2:]
    else:
        return found
    for key, child in items:
        if len(found) >= limit:
            break
        found += _paths(child, (*prefix, key), limit - len(found))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


def _delete(root: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return None
    parent = _get(root, path[:-1])
    del parent[path[-1]]
    return root


@st.composite
def mutated(draw: st.DrawFn, record: Any) -> Any:
    """`record` with one hostile change (or, now and then, none: valid inputs must still pass)."""
    value = copy.deepcopy(record)
    paths = _paths(value)
    path = draw(st.sampled_from(paths))
    target = _get(value, path)
    ops = ["replace", "replace", "scale", "keep"]
    if path:
        ops += ["drop", "rename"]
    if isinstance(target, list) and len(target) >= 2:
        ops += ["reverse", "truncate_list"]
    if isinstance(target, list | dict):
        ops += ["nest"]
    op = draw(st.sampled_from(ops))
    if op == "replace":
        return _set(value, path, draw(json_values))
    if op == "scale" and isinstance(target, int | float) and not isinstance(target, bool):
        factor = draw(st.sampled_from([-1, 0, 1e-300, 1e300, 10**12, math.inf, math.nan, 0.5, 1.5]))
        return _set(value, path, target * factor)
    if op == "drop":
        return _delete(value, path)
    if op == "rename":
        parent = _get(value, path[:-1])
        if isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(path[-1])
            return value
        return _delete(value, path)
    if op == "reverse":
        return _set(value, path, list(reversed(target)))
    if op == "truncate_list":
        return _set(value, path, target[: draw(st.integers(0, len(target) - 1))])
    if op == "nest":
        depth = draw(st.integers(1, 100))
        wrapped: Any = target
        for _ in range(depth):
            wrapped = [wrapped]
        return _set(value, path, wrapped)
    return value  # keep


def dumps(value: Any) -> str:
    """JSON text as Python writes it: NaN and Infinity come out as the non-standard constants."""
    return json.dumps(value)


@st.composite
def damaged_text(draw: st.DrawFn, text: str) -> bytes:
    """File-level damage to a JSON / JSONL text."""
    data = text.encode("utf-8")
    kind = draw(
        st.sampled_from(["random", "truncate", "empty", "deep", "bom", "repeat", "flip", "latin1", "binary"])
    )
    if kind == "random":
        return draw(st.binary(max_size=2000))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"   \n\n", b"null", b"[]", b"{}", b"0"]))
    if kind == "deep":
        depth = draw(st.sampled_from([65, 100, 1000, 200_000]))
        return b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "repeat":
        lines = data.splitlines(keepends=True)
        return data + (lines[0] if lines else b"")
    if kind == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if kind == "latin1":
        return data + "caf\xe9".encode("latin-1")
    return draw(st.binary(min_size=1, max_size=64)) + data


@st.composite
def mutated_jsonl(draw: st.DrawFn, rows: list[dict[str, Any]]) -> bytes:
    """A JSONL file of `rows` with one row mutated, or file-level damage."""
    text = "".join(dumps(r) + "\n" for r in rows)
    if draw(st.integers(0, 4)) == 0:
        return draw(damaged_text(text))
    index = draw(st.integers(0, len(rows) - 1))
    changed = list(rows)
    changed[index] = draw(mutated(rows[index]))
    return "".join(dumps(r) + "\n" for r in changed).encode("utf-8")


@st.composite
def mutated_json(draw: st.DrawFn, record: Any) -> bytes:
    """A JSON file of `record` mutated, or file-level damage."""
    if draw(st.integers(0, 4)) == 0:
        return draw(damaged_text(dumps(record)))
    return dumps(draw(mutated(record))).encode("utf-8")


FLOAT_DTYPES = ["float16", "float32", "float64"]
OTHER_DTYPES = ["complex64", "complex128", "int8", "int64", "uint8", "bool", "<U3", "S2", "object"]


@st.composite
def feature_arrays(draw: st.DrawFn, width: int) -> np.ndarray:
    """A feature array: mostly well-formed, with hostile dtypes, shapes and values mixed in."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES * 3 + OTHER_DTYPES))
    shape_kind = draw(st.sampled_from(["ok", "ok", "ok", "1d", "3d", "batch", "zero", "wide", "scalar"]))
    rows = draw(st.integers(1, 12))
    shape: tuple[int, ...] = {
        "ok": (rows, width),
        "1d": (width,),
        "3d": (2, rows, width),
        "batch": (1, rows, width),
        "zero": (0, width),
        "wide": (rows, width + draw(st.integers(1, 3))),
        "scalar": (),
    }[shape_kind]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == "object":
        return np.array([None] * max(1, int(np.prod(shape))), dtype=object)
    values = rng.standard_normal(shape) if shape else np.float64(rng.standard_normal())
    special = draw(st.sampled_from([None, None, math.nan, math.inf, -math.inf, 1e300, 3e38, 1e15, 1e16]))
    array = np.array(values, dtype=np.float64)
    if special is not None and array.size:
        array.flat[draw(st.integers(0, array.size - 1))] = special
    with np.errstate(all="ignore"):
        if dtype.startswith("complex"):
            return (array + 1j * draw(st.sampled_from([0.0, 1.0])) * array).astype(dtype)
        if dtype in ("<U3", "S2"):
            return np.array(array.astype(str), dtype=dtype)
        return array.astype(dtype)
