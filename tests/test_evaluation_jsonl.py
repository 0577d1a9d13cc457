"""The evaluator's jsonl reader: every broken input is one error naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from readcli.errors import InputFileError
from readcli.evaluation.rows import as_rows, check_same_ids, number_array, read_jsonl


def test_reads_rows_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"qid": 1}\n\n{"qid": 2}\n')
    rows = read_jsonl(path)
    assert [r["qid"] for r in rows.rows] == [1, 2]
    assert rows.origins == [f"{path}:1", f"{path}:3"]  # the blank line is skipped, not renumbered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"qid": 1}\n{"qid": 2,\n', r"p\.jsonl:2: not valid JSON"),
        ('{"qid": 1}\n[1, 2]\n', r"p\.jsonl:2: expected a JSON object, found list"),
        ("\n  \n", r"p\.jsonl: no rows \(the file is empty\)"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message):
        read_jsonl(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found: .*nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_fields_and_numbers() -> None:
    rows = as_rows([{"qid": 1, "w": [[0, 1, 0.5]]}], "predictions")
    with pytest.raises(InputFileError, match=r"predictions\[0\]: missing field 'scores'"):
        rows.field(0, "scores")
    assert number_array([[0, 1, 0.5]], "o", "w", ndim=2, width=3).shape == (1, 3)
    assert number_array([], "o", "w", ndim=2, width=3).shape == (0, 3)
    for bad in ([[0, 1]], [[0, 1, 2], [3]], "12", [True, "a"]):
        with pytest.raises(InputFileError, match="o: field 'w' must be"):
            number_array(bad, "o", "w", ndim=2, width=3)
    with pytest.raises(InputFileError, match="NaN or infinite"):
        number_array([1.0, float("nan")], "o", "w")
    np.testing.assert_array_equal(number_array([1, 2], "o", "w"), [1.0, 2.0])


def test_id_mismatch_names_a_few_and_counts_the_rest() -> None:
    with pytest.raises(InputFileError) as err:
        check_same_ids(range(5), range(20))
    message = str(err.value)
    assert (
        "15 qids in the ground truth have no prediction: 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 and 5 more"
        in message
    )
    assert "predicted" not in message  # nothing extra on the prediction side
