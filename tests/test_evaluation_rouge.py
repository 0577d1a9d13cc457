"""ROUGE via rouge-score, and pairing summary files line by line or by How2 video id."""

from __future__ import annotations

from pathlib import Path

import pytest

from readcli.errors import InputFileError, InvalidValueError
from readcli.evaluation import pair_summaries, read_summary_file, rouge_scores
from readcli.evaluation.summaries import looks_id_keyed


def test_rouge_by_hand() -> None:
    # "the cat sat" vs "the cat sat on the mat": unigrams 3 of 3 predicted, 3 of 6 reference ->
    # F1 2/3; bigrams 2 of 2 and 2 of 5 -> F1 4/7; LCS 3 -> F1 2/3. The second pair is identical.
    scores = rouge_scores(["the cat sat", "a dog runs"], ["the cat sat on the mat", "a dog runs"])
    assert scores == {"rouge1": 83.33, "rouge2": 78.57, "rougeL": 83.33}  # (2/3 + 1) / 2, (4/7 + 1) / 2


def test_rouge_uses_the_porter_stemmer() -> None:
    assert rouge_scores(["cooking pastas"], ["cooks pasta"]) == {
        "rouge1": 100.0,
        "rouge2": 100.0,
        "rougeL": 100.0,
    }


def test_rouge_refuses_unpaired_or_empty_input() -> None:
    with pytest.raises(InvalidValueError, match="2 predictions but 1 references"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(InvalidValueError, match="no summaries"):
        rouge_scores([], [])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_files_pair_by_line(tmp_path: Path) -> None:
    preds = read_summary_file(_write(tmp_path / "p.txt", "Learn to cook pasta.\nHow to tie a tie\n\n"))
    refs = read_summary_file(_write(tmp_path / "r.txt", "Cooking pasta.\nTie a tie.\n"))
    assert pair_summaries(preds, refs) == (
        ["Learn to cook pasta.", "How to tie a tie"],
        ["Cooking pasta.", "Tie a tie."],
        "plain",
    )
    short = read_summary_file(_write(tmp_path / "s.txt", "only one\n"))
    with pytest.raises(InputFileError, match=r"p\.txt has 2 summaries but .*s\.txt has 1"):
        pair_summaries(preds, short)


def test_how2_files_pair_by_id(tmp_path: Path) -> None:
    preds = read_summary_file(_write(tmp_path / "p.txt", "vid_2 tie a tie\n-AbCdEf12 cook pasta\n"))
    refs = read_summary_file(_write(tmp_path / "r.txt", "-AbCdEf12 cooking pasta\nvid_2 tying a tie\n"))
    assert pair_summaries(preds, refs) == (
        ["cook pasta", "tie a tie"],
        ["cooking pasta", "tying a tie"],
        "how2",
    )
    other = read_summary_file(_write(tmp_path / "o.txt", "-AbCdEf12 cooking pasta\nvid_3 tying a tie\n"))
    with pytest.raises(
        InputFileError, match="1 video ids in the references have no prediction: vid_3; 1 predicted"
    ):
        pair_summaries(preds, other)


def test_format_detection_rule() -> None:
    assert looks_id_keyed(["_-RT3sGHGBk a video", "a9Zk_0cmXyQ another"])
    assert not looks_id_keyed(["Learn how to cook", "Watch this"])  # no digit, '_', '-' or inner capital
    assert not looks_id_keyed(["v_1 one", "v_1 again"])  # ids must be distinct
    assert not looks_id_keyed(["v_1, one", "v_2 two"])  # punctuation is not part of an id


def test_one_id_keyed_file_and_one_plain_file_is_an_error(tmp_path: Path) -> None:
    preds = read_summary_file(_write(tmp_path / "p.txt", "vid_2 tie a tie\nvid_1 cook pasta\n"))
    refs = read_summary_file(_write(tmp_path / "r.txt", "Tie a tie.\nCook pasta.\n"))
    with pytest.raises(InputFileError, match=r"p\.txt looks like How2 .* but .*r\.txt does not"):
        pair_summaries(preds, refs)
    assert pair_summaries(preds, refs, summary_format="plain")[2] == "plain"
    with pytest.raises(
        InvalidValueError, match="summary format 'xml' is not valid: use one of auto, plain, how2"
    ):
        pair_summaries(preds, refs, summary_format="xml")


def test_empty_and_repeated_id_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"e\.txt: no summaries \(the file is empty\)"):
        read_summary_file(_write(tmp_path / "e.txt", "\n\n"))
    preds = read_summary_file(_write(tmp_path / "p.txt", "v_1 a\nv_1 b\n"))
    with pytest.raises(InputFileError, match=r"p\.txt:2: video id 'v_1' repeated \(first on line 1\)"):
        pair_summaries(preds, preds, summary_format="how2")
