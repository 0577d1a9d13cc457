"""YouTube Highlights and TVSum on the real annotation files: domains, counts, targets, batches."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from readcli.data.annotations import MomentAnnotation
from readcli.data.collate import collate_moments
from readcli.data.grounding import load_grounding_split
from readcli.data.readers import load_annotations
from readcli.data.targets import saliency_pairs, saliency_vector
from readcli.data.youtube_tvsum import domains, resolve_domain, select_domain, split_by_domain
from readcli.errors import InvalidValueError
from readcli.features.store import save_feature_array

YT = "youtube_highlight/youtube_highlight_{}_release.jsonl"
TVSUM = "tvsum/tvsum_{}_release.jsonl"


def load(shared: Path, pattern: str, split: str) -> list[MomentAnnotation]:
    return load_annotations(shared / pattern.format(split))


def test_youtube_domains_and_counts(shared_data: Path) -> None:
    train, val = load(shared_data, YT, "train"), load(shared_data, YT, "val")
    assert (len(train), len(val)) == (233, 152)
    assert domains(train) == domains(val) == ["dog", "gymnastics", "parkour", "skating", "skiing", "surfing"]
    assert Counter(a.domain for a in train) == {
        "skiing": 67, "surfing": 53, "dog": 39, "gymnastics": 33, "skating": 23, "parkour": 18,
    }  # fmt: skip
    assert {d: len(rows) for d, rows in split_by_domain(val).items()}["skiing"] == 50
    assert all(a.format == "youtube_highlights" and a.query == a.domain for a in train + val)


def test_youtube_target_is_match_above_zero(shared_data: Path) -> None:
    first = load(shared_data, YT, "train")[0]
    match = [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 1, 1, 0]  # the file's first row
    assert first.num_clips == 16
    np.testing.assert_array_equal(
        saliency_vector(first, 16, clip_len=2.0), [1.0 if m > 0 else 0.0 for m in match]
    )
    assert first.relevant_ids == (12, 13, 14)


def test_tvsum_domains_counts_and_mean_target(shared_data: Path) -> None:
    train, val = load(shared_data, TVSUM, "train"), load(shared_data, TVSUM, "val")
    assert all(a.format == "tvsum" for a in train + val)
    assert len(domains(train)) == 10 and domains(train) == domains(val)
    assert set(Counter(a.domain for a in train).values()) == {4}
    assert set(Counter(a.domain for a in val).values()) == {1}
    first = train[0]
    assert first.query == "Electric cars making earth more green" and first.num_clips == 66
    assert first.duration == 132.0  # 66 clips of 2 s (the file's duration field counts clips)
    label_row0 = [1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 5, 3, 1, 1, 1, 1, 1, 1, 1, 1]  # 20 annotators, clip 0
    assert first.clip_scores[0] == pytest.approx(np.mean(label_row0))


def test_highlight_pairs_rank_best_against_worst(shared_data: Path) -> None:
    rng = np.random.default_rng(0)
    for ann in load(shared_data, TVSUM, "val") + load(shared_data, YT, "val"):
        n = ann.num_clips or 0
        scores = saliency_vector(ann, n, clip_len=2.0)
        pairs = saliency_pairs(ann, n, clip_len=2.0, rng=rng)
        assert pairs.valid
        assert scores[pairs.pos[0]] == scores.max() and scores[pairs.neg[0]] == scores.min()
        assert pairs.pos[1] in ann.relevant_ids and pairs.neg[1] not in ann.relevant_ids


def test_domain_names_resolve_case_insensitively_with_umt_aliases(shared_data: Path) -> None:
    val = load(shared_data, YT, "val")
    assert resolve_domain("Gym", domains(val)) == "gymnastics"
    assert [a.domain for a in select_domain(val, "SKI")] == ["skiing"] * 50
    assert len(select_domain(load(shared_data, TVSUM, "val"), "bk")) == 1
    with pytest.raises(InvalidValueError, match="unknown domain 'cats'; available: dog, gymnastics"):
        select_domain(val, "cats")


def test_per_domain_split_yields_the_grounding_batch_format(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / YT.format("train"), tmp_path / "train.jsonl")
    rows = select_domain(load(shared_data, YT, "train"), "parkour")
    rng = np.random.default_rng(0)
    saved = {}
    for ann in rows:  # one feature row per annotated clip (+1 extra row, cut off to match the labels)
        saved[ann.vid] = rng.normal(size=((ann.num_clips or 0) + 1, 4)).astype(np.float32)
        save_feature_array(
            tmp_path / "video_features" / "clip" / f"{ann.vid}.npz", "features", saved[ann.vid]
        )
    save_feature_array(
        tmp_path / "text_features" / "domain_parkour.npz", "last_hidden_state", rng.normal(size=(1, 3))
    )
    loaded = load_grounding_split(tmp_path, "train", domain="par")
    assert len(loaded.dataset) == 18 and loaded.spec.max_v_l is None
    items = [loaded.dataset[i] for i in range(3)]
    assert not loaded.spec.tef and not loaded.spec.normalize_text and not loaded.spec.streams[0].l2_normalize
    for item, ann in zip(items, rows, strict=False):
        assert item.span_labels.shape == (0, 2) and item.audio is None
        # UMT's loaders feed the raw features: no TEF, no L2 normalisation, cut to the labelled clips
        np.testing.assert_array_equal(item.video, saved[ann.vid][: ann.num_clips])
    batch = collate_moments(items)
    longest = max(ann.num_clips or 0 for ann in rows[:3])
    assert batch.src_vid.shape == (3, longest, 4) and batch.saliency_all_labels.shape == (3, longest)
    assert batch.src_aud is None and "src_aud" not in batch.model_inputs()
    assert batch.domains == ["parkour"] * 3 and batch.saliency_valid.all()
    np.testing.assert_array_equal(
        batch.saliency_all_labels[0, : rows[0].num_clips].numpy(),
        saliency_vector(rows[0], rows[0].num_clips or 0, clip_len=2.0),
    )
