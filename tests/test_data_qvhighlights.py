"""QVHighlights on the real annotation files, with tiny synthetic feature files written in tmp_path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from readcli.data.annotations import MomentAnnotation
from readcli.data.collate import TorchDataset, collate_moments
from readcli.data.grounding import load_grounding_split
from readcli.data.moment_dataset import MomentItem
from readcli.data.readers import load_annotations
from readcli.data.targets import saliency_pairs, saliency_vector, span_labels
from readcli.features.store import save_feature_array

QVH = "qvhighlights"


@pytest.fixture(scope="module")
def val_rows(shared_data: Path) -> list[MomentAnnotation]:
    return load_annotations(shared_data / QVH / "highlight_val_release.jsonl")


def test_all_rows_of_train_val_and_test_parse(shared_data: Path, val_rows: list[MomentAnnotation]) -> None:
    train = load_annotations(shared_data / QVH / "highlight_train_release.jsonl")
    test = load_annotations(shared_data / QVH / "highlight_test_with_gt.jsonl")
    assert (len(train), len(val_rows), len(test)) == (7218, 1550, 1542)
    assert all(a.format == "qvhighlights" and a.has_labels for a in train + val_rows + test)
    first = train[0]
    assert (first.qid, first.vid, first.duration) == (9769, "j7rJstUseKg_360.0_510.0", 150.0)
    assert first.windows is not None and first.windows[0] == (72.0, 82.0)
    assert first.clip_scores[0] == pytest.approx(3.0)  # mean of [4, 3, 2]


def test_spans_lie_in_unit_interval_for_every_val_row(val_rows: list[MomentAnnotation]) -> None:
    rng = np.random.default_rng(0)
    for ann in val_rows:
        n = math.ceil(ann.duration / 2)
        spans = span_labels(ann.windows or (), num_clips=n, clip_len=2.0, max_windows=5, rng=rng)
        assert 1 <= len(spans) <= 5
        start, end = spans[:, 0] - spans[:, 1] / 2, spans[:, 0] + spans[:, 1] / 2
        assert (spans[:, 1] > 0).all() and (start >= -1e-6).all() and (end <= 1 + 1e-6).all()


def test_saliency_pairs_follow_the_official_rule_on_every_val_row(val_rows: list[MomentAnnotation]) -> None:
    rng = np.random.default_rng(0)
    for ann in val_rows:
        n = 74  # one clip fewer than the annotation may use: nothing past the features is drawn
        pairs = saliency_pairs(ann, n, clip_len=2.0, rng=rng)
        scores = dict(zip(ann.clip_ids, ann.clip_scores, strict=True))
        inside = [c for c in ann.clip_ids if c < n]
        assert pairs.valid and pairs.pos.shape == pairs.neg.shape == (2,)
        assert ((pairs.pos >= 0) & (pairs.pos < n) & (pairs.neg >= 0) & (pairs.neg < n)).all()
        hard_pos, hard_neg, easy_pos, easy_neg = (
            int(v) for v in (*pairs.pos[:1], *pairs.neg[:1], *pairs.pos[1:], *pairs.neg[1:])
        )
        assert scores[hard_pos] == max(scores[c] for c in inside)  # best relevant clip
        assert scores[hard_neg] == min(scores[c] for c in inside)  # worst relevant clip
        assert easy_pos in scores
        if len(inside) < n:  # easy negative from outside the relevant clips
            assert easy_neg not in scores
        vector = saliency_vector(ann, n, clip_len=2.0)
        assert vector[hard_pos] == scores[hard_pos] and vector.shape == (n,)


def test_more_windows_than_max_windows_keeps_a_random_subset() -> None:
    windows = tuple((2.0 * i, 2.0 * i + 1) for i in range(8))
    a = span_labels(windows, num_clips=10, clip_len=2.0, max_windows=5, rng=np.random.default_rng(1))
    b = span_labels(windows, num_clips=10, clip_len=2.0, max_windows=5, rng=np.random.default_rng(2))
    assert a.shape == b.shape == (5, 2) and not np.array_equal(a, b)
    # a window past the features is clipped, one wholly past them dropped
    clipped = span_labels(
        ((16.0, 24.0), (21.0, 30.0)), num_clips=10, clip_len=2.0, max_windows=5, rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(clipped, [[0.9, 0.2]])


def write_qvh_dataset(root: Path, rows: list[dict], *, clip_dim: int = 8, text_dim: int = 6) -> None:
    """Real rows, random tiny features: one 2-s clip per row of video, 3..40 text tokens."""
    rng = np.random.default_rng(0)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        n = math.ceil(r["duration"] / 2)
        save_feature_array(
            root / "video_features" / "clip" / f"{r['vid']}.npz", "features", rng.normal(size=(n, clip_dim))
        )
        tokens = rng.normal(size=(int(rng.integers(3, 40)), text_dim))
        save_feature_array(root / "text_features" / f"qid{r['qid']}.npz", "last_hidden_state", tokens)


def test_real_rows_become_model_ready_batches(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / QVH / "highlight_val_release.jsonl").read_text().splitlines()[:12]
    write_qvh_dataset(tmp_path, [json.loads(line) for line in lines])
    loaded = load_grounding_split(tmp_path, "train")
    assert loaded.spec.video_dim == 8 + 2 and loaded.spec.text_dim == 6
    assert loaded.report.rows_used == 12 and loaded.report.skipped_count == 0
    batch = collate_moments([loaded.dataset[i] for i in range(4)])
    assert batch.src_vid.shape == (4, 75, 10) and batch.src_vid_mask.dtype.is_floating_point
    assert batch.src_txt.shape[0] == 4 and batch.src_txt.shape[1] <= 32  # max_q_l
    np.testing.assert_allclose(
        batch.src_vid[0, :, -2:].numpy(), np.stack([np.arange(75) / 75, np.arange(1, 76) / 75], 1), atol=1e-6
    )
    valid_text = batch.src_txt[batch.src_txt_mask.bool()]
    np.testing.assert_allclose(valid_text.norm(dim=-1).numpy(), 1.0, atol=5e-5)
    assert set(batch.model_inputs()) == {"src_txt", "src_txt_mask", "src_vid", "src_vid_mask"}
    targets = batch.targets()
    assert targets["saliency_pos_labels"].shape == (4, 2) and targets["span_labels"][0]["spans"].shape[1] == 2
    assert batch.qids == [json.loads(line)["qid"] for line in lines[:4]]
    loader: DataLoader[MomentItem] = DataLoader(
        TorchDataset(loaded.dataset), batch_size=5, collate_fn=collate_moments
    )
    assert [len(b.qids) for b in loader] == [5, 5, 2]
