"""How2: pairing by video id, missing ids and empty lines reported, features checked, tokenizer truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from readcli.data.collate import collate_summaries
from readcli.data.how2 import How2Dataset, How2Limits, load_how2_split
from readcli.errors import EmptyDatasetError, FeatureMissingError, InputFileError


def make_how2(root: Path, split: str = "sum_train") -> None:
    d = root / split
    d.mkdir(parents=True)
    (d / "tran.tok.txt").write_text(
        "vidA hello there , today we cook pasta .\n"
        "vidB a very long transcript " + "word " * 60 + "\n"
        "\n"
        "vidC\n"
        "vidD only a transcript here\n"
        "vidE fine transcript\n"
    )
    (d / "desc.tok.txt").write_text(
        "vidE short summary\nvidA learn to cook pasta .\nvidB a summary\n"
        "vidC summary of nothing\nvidZ orphan summary\n"
    )
    feats = root / "video_action_features"
    feats.mkdir()
    for i, vid in enumerate(["vidA", "vidB", "vidE"]):
        np.save(feats / f"{vid}.npy", np.full((5 + 300 * (vid == "vidB"), 2048), float(i), dtype=np.float32))


def test_pairs_by_id_and_reports_what_was_dropped(tmp_path: Path) -> None:
    make_how2(tmp_path)
    split = load_how2_split(tmp_path, "train")
    assert [e.video_id for e in split.examples] == ["vidA", "vidB", "vidE"]
    assert split.examples[2].summary == "short summary"  # joined by id, not by line position
    report = split.report
    assert report.only_transcript == ("vidD",) and report.only_summary == ("vidZ",)
    assert [p.rsplit(":", 1)[1] for p in report.empty_lines] == ["3", "4"]  # blank line, id without text
    assert report.pairs_used == 3 and report.missing_features == ()


def test_missing_features_error_or_skip_with_count(tmp_path: Path) -> None:
    make_how2(tmp_path)
    (tmp_path / "video_action_features" / "vidB.npy").unlink()
    with pytest.raises(FeatureMissingError, match="video vidB: expected vidB.npy in .*video_action_features"):
        load_how2_split(tmp_path, "train")
    split = load_how2_split(tmp_path, "train", skip_missing=True)
    assert split.report.missing_features == ("vidB",) and len(split.examples) == 2


def test_wrong_width_empty_split_and_subset(tmp_path: Path) -> None:
    make_how2(tmp_path)
    np.save(tmp_path / "video_action_features" / "vidE.npy", np.zeros((4, 1024), dtype=np.float32))
    with pytest.raises(InputFileError, match="vidE.npy: feature dimension 1024, expected 2048"):
        load_how2_split(tmp_path, "train")
    np.save(tmp_path / "video_action_features" / "vidE.npy", np.zeros((4, 2048), dtype=np.float32))
    chosen = load_how2_split(tmp_path, "train", samples=2, seed=7).examples
    assert len(chosen) == 2 and chosen == load_how2_split(tmp_path, "train", samples=2, seed=7).examples
    for path in (tmp_path / "video_action_features").iterdir():
        path.unlink()
    with pytest.raises(EmptyDatasetError, match="no usable pairs .*3 without features"):
        load_how2_split(tmp_path, "train", skip_missing=True)
    with pytest.raises(InputFileError, match="no How2 val split .*val or sum_cv or cv"):
        load_how2_split(tmp_path, "val")


def test_batches_truncate_at_the_limits_and_count_it(tmp_path: Path) -> None:
    from transformers import ByT5Tokenizer

    make_how2(tmp_path)
    limits = How2Limits(max_input_tokens=64, max_target_tokens=16, max_video_frames=100)
    dataset = How2Dataset(load_how2_split(tmp_path, "train"), limits)
    items = [dataset[i] for i in range(len(dataset))]
    assert items[1].video.shape == (100, 2048)  # cut to max_video_frames on load
    batch = collate_summaries(items, ByT5Tokenizer(), limits)
    assert batch.input_ids.shape == (3, 64) and batch.truncated_inputs == 1  # vidB's long transcript
    assert batch.truncated_targets == 1  # "learn to cook pasta ." is 21 bytes > 16
    assert batch.input_ids[1, -1].item() == 1  # ByT5's </s> kept at the end of a truncated input
    assert (batch.labels == -100).any() and batch.labels.shape[1] == 16
    assert batch.video.shape == (3, 100, 2048) and batch.video_mask.sum(1).tolist() == [5, 100, 5]
    assert batch.video_ids == ["vidA", "vidB", "vidE"]
