"""Annotation jsonl reading: file:line on every problem, duplicate qids, field checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from readcli.data.annotation_jsonl import check_unique, read_jsonl
from readcli.data.readers import load_annotations
from readcli.errors import InputFileError

GOOD = (
    '{"qid": 1, "query": "a man talks", "duration": 150, "vid": "v1", "relevant_windows": [[0, 4]], '
    '"relevant_clip_ids": [0, 1], "saliency_scores": [[1, 2, 3], [4, 4, 4]]}'
)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_broken_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "", '{"qid": 2, "query": ')
    with pytest.raises(InputFileError, match=rf"{path}:3: not valid JSON"):
        read_jsonl(path)


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    rows = read_jsonl(write(tmp_path, "", GOOD, "   ", GOOD.replace('"qid": 1', '"qid": 2')))
    assert [r.line for r in rows] == [2, 4]


def test_missing_field_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, GOOD.replace('"vid": "v1", ', "").replace('"qid": 1', '"qid": 2'))
    with pytest.raises(InputFileError, match=rf"{path}:2: missing field 'vid'"):
        load_annotations(path)


def test_wrong_type_and_bad_window_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('"duration": 150', '"duration": "long"'))
    with pytest.raises(
        InputFileError, match=r":1: field 'duration' = 'long': Input should be a valid number"
    ):
        load_annotations(path)
    path = write(tmp_path, GOOD.replace("[[0, 4]]", "[[8, 4]]"))
    with pytest.raises(
        InputFileError,
        match=r"relevant_windows\[0\]' = \[8, 4\]: a window must be \[start, end\] with start < end",
    ):
        load_annotations(path)
    path = write(tmp_path, GOOD.replace("[[1, 2, 3], [4, 4, 4]]", "[[1, 2, 3]]"))
    with pytest.raises(InputFileError, match="saliency_scores has 1 entries but relevant_clip_ids has 2"):
        load_annotations(path)


def test_duplicate_qid_names_qid_and_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, GOOD.replace('"qid": 1', '"qid": 2'), GOOD)
    with pytest.raises(InputFileError, match=rf"duplicate qid 1: {path}:1 and line 3"):
        load_annotations(path)
    # an int and a string naming the same feature file collide too
    with pytest.raises(InputFileError, match="duplicate qid"):
        check_unique(read_jsonl(write(tmp_path, GOOD, GOOD.replace('"qid": 1', '"qid": "1"'))), "qid")


def test_empty_or_absent_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="contains no rows"):
        read_jsonl(write(tmp_path, "", ""))
    with pytest.raises(InputFileError, match="annotation file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_a_row_without_labels_parses_as_unlabelled(tmp_path: Path) -> None:
    row = '{"qid": 5, "query": "q", "duration": 20.5, "vid": "v"}'
    (ann,) = load_annotations(write(tmp_path, row))
    assert not ann.has_labels and ann.windows is None and ann.source.endswith("train.jsonl:1")


def test_scores_must_be_finite_numbers(tmp_path: Path) -> None:
    for bad, shown in (
        ("[[1, 2, 3], [true, 4, 4]]", r"saliency_scores\[1\]\[0\]' = True: Input should be a valid number"),
        ("[[1, 2, 3], [NaN, 4, 4]]", r"not valid JSON \(the non-standard constant NaN"),
        ("[[1, 2, 3], [4, 4, 1e308]]", r"saliency_scores\[1\]\[2\]' = 1e\+308: .*less than or equal to 4"),
    ):
        path = write(tmp_path, GOOD.replace("[[1, 2, 3], [4, 4, 4]]", bad))
        with pytest.raises(InputFileError, match=rf":1: .*{shown}"):
            load_annotations(path)
    (ann,) = load_annotations(write(tmp_path, GOOD.replace("[[1, 2, 3], [4, 4, 4]]", "[[1, 2, 3], [4]]")))
    assert ann.clip_scores == (2.0, 4.0)  # annotator counts may differ per clip


def test_tvsum_rows_need_equal_annotator_counts(tmp_path: Path) -> None:
    row = '{"qid": "v", "vid": "v", "query": "t", "duration": 2, "domain": "BK", "label": [[1, 2], [3]]}'
    with pytest.raises(
        InputFileError, match=r":1: field 'label' = .*: label\[1\] has 1 annotator scores, label\[0\] has 2"
    ):
        load_annotations(write(tmp_path, row), fmt="tvsum")
