"""Low-resource subsets: same seed -> same rows, whatever the file order; nested in n; clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from readcli.data.readers import load_annotations
from readcli.data.subset import select_subset
from readcli.errors import InvalidValueError


@dataclass(frozen=True)
class Row:
    key: str


ROWS = [Row(str(i)) for i in range(50)]


def keys(rows: list[Row]) -> list[str]:
    return [r.key for r in rows]


def test_same_seed_same_rows_independent_of_order() -> None:
    a = select_subset(ROWS, 10, seed=3)
    b = select_subset(list(reversed(ROWS)), 10, seed=3)
    assert sorted(keys(a)) == sorted(keys(b))
    assert keys(a) == sorted(keys(a), key=int)  # returned in input order
    assert keys(select_subset(ROWS, 10, seed=4)) != keys(a)


def test_a_larger_subset_contains_the_smaller_one() -> None:
    assert set(keys(select_subset(ROWS, 10, seed=1))) <= set(keys(select_subset(ROWS, 25, seed=1)))


def test_n_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="asked for 51 samples but only 50 are available"):
        select_subset(ROWS, 51, seed=0)
    for bad in (0, -3):
        with pytest.raises(InvalidValueError, match=f"positive integer, got {bad}"):
            select_subset(ROWS, bad, seed=0)


def test_qvhighlights_low_resource_subset_is_stable(shared_data: Path) -> None:
    train = load_annotations(shared_data / "qvhighlights" / "highlight_train_release.jsonl")
    chosen = select_subset(train, 700, seed=2024)
    assert len(chosen) == 700 and len({a.qid for a in chosen}) == 700
    assert [a.qid for a in chosen] == [a.qid for a in select_subset(train[::-1], 700, seed=2024)[::-1]]
