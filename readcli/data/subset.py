"""Reproducible low-resource subsets (`--train-samples 700 --seed S`).

Each row gets a rank from sha256("{seed}:{key}") and the n best-ranked rows are kept, returned in
their original order. So the choice depends only on the seed and the rows' keys (qid, video id):
not on the file's row order, not on Python's hash seed, not on the machine; and a larger n with
the same seed keeps every row of a smaller one. (The official `data_ratio` keeps the first rows of
the file instead, which ties the subset to the file's order.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

from readcli.errors import InvalidValueError


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=Keyed)


def subset_rank(key: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def select_subset(rows: Sequence[K], n: int, seed: int) -> list[K]:
    """The n rows of lowest sha256(seed:key), in input order; 0 < n <= len(rows)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise InvalidValueError(f"number of samples must be a positive integer, got {n!r}")
    if n > len(rows):
        raise InvalidValueError(
            f"asked for {n} samples but only {len(rows)} are available (valid: 1..{len(rows)})"
        )
    ranked = sorted(range(len(rows)), key=lambda i: subset_rank(rows[i].key, seed))
    keep = sorted(ranked[:n])
    return [rows[i] for i in keep]
