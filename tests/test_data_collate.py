"""Collation: padding, official float masks, target format, device moves, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from readcli.data.collate import collate_moments, pad_rows
from readcli.data.moment_dataset import MomentItem
from readcli.errors import InvalidValueError


def item(
    n_v: int, n_l: int, *, d_v: int = 5, pairs: int = 2, windows: int = 1, audio: int | None = None
) -> MomentItem:
    rng = np.random.default_rng(n_v)
    return MomentItem(
        qid=n_v, vid=f"v{n_v}", query="q", duration=2.0 * n_v, domain=None,
        video=rng.normal(size=(n_v, d_v)).astype(np.float32), text=np.ones((n_l, 3), np.float32),
        span_labels=np.full((windows, 2), 0.5, np.float32),
        saliency_pos=np.arange(pairs, dtype=np.int64), saliency_neg=np.arange(pairs, dtype=np.int64) + 1,
        saliency_valid=True, saliency=np.arange(n_v, dtype=np.float32) + 1, has_labels=True,
        audio=None if audio is None else rng.normal(size=(audio, 3)).astype(np.float32),
    )  # fmt: skip


def test_padding_and_masks_follow_the_official_convention() -> None:
    a, b = item(4, 2), item(6, 5, windows=0)
    batch = collate_moments([a, b])
    assert batch.src_vid.shape == (2, 6, 5) and batch.src_txt.shape == (2, 5, 3)
    assert batch.src_vid_mask.dtype == torch.float32
    assert batch.src_vid_mask.tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch.src_txt_mask.sum(1).tolist() == [2, 5]
    assert (batch.src_vid[0, 4:] == 0).all() and torch.equal(batch.src_vid[0, :4], torch.from_numpy(a.video))
    assert batch.saliency_all_labels[0].tolist() == [1, 2, 3, 4, 0, 0]
    assert [s.shape for s in batch.span_labels] == [(1, 2), (0, 2)]
    assert batch.saliency_pos_labels.dtype == torch.int64 and batch.saliency_pos_labels.shape == (2, 2)
    assert batch.durations == [8.0, 12.0] and batch.vids == ["v4", "v6"]


def test_targets_and_device_move() -> None:
    batch = collate_moments([item(3, 2), item(5, 2)]).to("cpu")
    targets = batch.targets()
    assert isinstance(targets["span_labels"], list) and set(targets["span_labels"][0]) == {"spans"}
    assert targets["saliency_valid"].dtype == torch.bool
    moved = batch.to(torch.device("meta"))
    assert moved.src_vid.device.type == "meta" and moved.span_labels[0].device.type == "meta"
    assert batch.src_vid.device.type == "cpu" and moved.qids == batch.qids


def test_inconsistent_items_are_refused() -> None:
    with pytest.raises(InvalidValueError, match=r"different widths: \[5, 7\]"):
        collate_moments([item(3, 2), item(4, 2, d_v=7)])
    with pytest.raises(InvalidValueError, match=r"different numbers of saliency pairs: \[2, 4\]"):
        collate_moments([item(3, 2), item(4, 2, pairs=4)])
    with pytest.raises(InvalidValueError, match="empty batch"):
        collate_moments([])


def test_pad_rows_returns_float_mask() -> None:
    padded, mask = pad_rows([np.ones((1, 2)), np.ones((3, 2))])
    assert padded.dtype == torch.float32 and mask.tolist() == [[1, 0, 0], [1, 1, 1]]


def test_only_the_collate_module_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, readcli.data.grounding, readcli.data.how2, readcli.data.youtube_tvsum; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_audio_is_padded_like_the_video_and_passed_only_when_present() -> None:
    a, b = item(4, 2, audio=4), item(6, 2, audio=6)
    batch = collate_moments([a, b])
    assert (
        batch.src_aud is not None
        and batch.src_aud.shape == (2, 6, 3)
        and batch.src_aud.dtype == torch.float32
    )
    assert torch.equal(batch.src_aud[0, :4], torch.from_numpy(a.audio)) and (batch.src_aud[0, 4:] == 0).all()
    assert set(batch.model_inputs()) == {"src_txt", "src_txt_mask", "src_vid", "src_vid_mask", "src_aud"}
    assert batch.to(torch.device("meta")).src_aud.device.type == "meta"  # type: ignore[union-attr]
    plain = collate_moments([item(4, 2), item(6, 2)])
    assert plain.src_aud is None and "src_aud" not in plain.model_inputs()
    with pytest.raises(InvalidValueError, match="1 of 2 items in a batch have no audio"):
        collate_moments([a, item(6, 2)])
    with pytest.raises(InvalidValueError, match="qid 4: 3 audio rows for 4 video clips"):
        collate_moments([item(4, 2, audio=3)])
