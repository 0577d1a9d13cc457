"""Sliding-window grounding: window planning, saliency stitching, moment merging, and the model inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone
from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.data.features import l2_normalize, temporal_endpoint_feature
from readcli.errors import InvalidValueError
from readcli.inference.windows import (
    WindowSettings,
    centre_weights,
    ground_windows,
    merge_moments,
    plan_windows,
    stitch_saliency,
)
from readcli.training.grounding_predict import PredictionSettings, QueryMeta, predictions_from_outputs


def _spec(dim: int = 16, text_dim: int = 12, *, max_v_l: int = 20, max_q_l: int = 16) -> VideoFeatureSpec:
    return VideoFeatureSpec(
        streams=(StreamSpec("clip", dim),), text_dim=text_dim, clip_len=2.0, max_v_l=max_v_l, max_q_l=max_q_l
    )


# --- planning ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_clips", [1, 7, 75])
def test_a_video_within_one_window_is_one_window(n_clips: int) -> None:
    assert plan_windows(n_clips, 75, 37) == ((0, n_clips),)


def test_long_video_gets_full_overlapping_windows_and_a_tail_window_ending_at_the_last_clip() -> None:
    windows = plan_windows(300, 75, 37)
    assert windows[:3] == ((0, 75), (37, 112), (74, 149))
    assert windows[-1] == (225, 300) and windows[-2] == (222, 297)
    assert all(end - start == 75 for start, end in windows)
    covered = np.zeros(300, dtype=int)
    for start, end in windows:
        covered[start:end] += 1
    assert covered.min() >= 1


def test_stride_equal_to_the_window_tiles_without_overlap_but_the_tail() -> None:
    assert plan_windows(50, 20, 20) == ((0, 20), (20, 40), (30, 50))
    assert plan_windows(60, 20, 20) == ((0, 20), (20, 40), (40, 60))  # exact fit: no extra window


@pytest.mark.parametrize(("n", "w", "s"), [(0, 75, 37), (10, 0, 1), (10, 5, 0), (10, 5, 6)])
def test_bad_plans_are_refused(n: int, w: int, s: int) -> None:
    with pytest.raises(InvalidValueError):
        plan_windows(n, w, s)


def test_settings_default_to_half_a_window_and_check_their_values() -> None:
    assert WindowSettings(window=75).step == 37 and WindowSettings(window=1).step == 1
    assert WindowSettings(window=10, stride=3).step == 3
    for bad in ({"window": 0}, {"stride": 0}, {"stride": 76}, {"nms_iou": 1.5}, {"batch_size": 0}):
        with pytest.raises(InvalidValueError):
            WindowSettings(**bad)


# --- stitching and merging ---------------------------------------------------------------------------------


def test_centre_weights_are_a_triangle_peaking_mid_window() -> None:
    assert centre_weights(5).tolist() == [1, 2, 3, 2, 1]
    assert centre_weights(4).tolist() == [1, 2, 2, 1]
    assert centre_weights(1).tolist() == [1]


def test_one_window_saliency_is_returned_unchanged() -> None:
    row = np.array([0.3, -1.0, 2.5], dtype=np.float32)
    np.testing.assert_allclose(stitch_saliency(3, [(0, 3)], [row]), row)


def test_overlapping_windows_are_averaged_with_centre_weights() -> None:
    # windows [0, 3) and [1, 4), weights [1, 2, 1] each; constant scores 1 and 3
    stitched = stitch_saliency(4, [(0, 3), (1, 4)], [np.ones(3), np.full(3, 3.0)])
    np.testing.assert_allclose(stitched, [1.0, (2 * 1 + 1 * 3) / 3, (1 * 1 + 2 * 3) / 3, 3.0], rtol=1e-6)


def test_stitching_refuses_gaps_and_wrong_lengths() -> None:
    with pytest.raises(InvalidValueError, match="clip 3 of 5 uncovered"):
        stitch_saliency(5, [(0, 3)], [np.ones(3)])
    with pytest.raises(InvalidValueError, match="has 2 saliency scores"):
        stitch_saliency(3, [(0, 3)], [np.ones(2)])


def test_merge_clips_to_the_video_drops_empty_rows_sorts_and_removes_duplicates() -> None:
    rows = [
        [10.0, 20.0, 0.5],
        [10.0, 20.0, 0.7],  # the same moment seen from the next window, scored higher
        [12.0, 22.0, 0.6],  # IoU 8/12 = 0.67 with the best: dropped at 0.5
        [-4.0, 2.0, 0.4],  # clipped to [0, 2]
        [95.0, 110.0, 0.3],  # clipped to [95, 100]
        [100.0, 104.0, 0.9],  # wholly past the end: gone
        [30.0, 30.0, 0.8],  # zero length: gone
    ]
    merged = merge_moments(rows, duration=100.0, nms_iou=0.5)
    assert merged == ((10.0, 20.0, 0.7), (0.0, 2.0, 0.4), (95.0, 100.0, 0.3))
    kept_at_07 = merge_moments(rows, duration=100.0, nms_iou=0.7)
    assert (12.0, 22.0, 0.6) in kept_at_07 and len(kept_at_07) == 4


def test_merge_of_nothing_is_empty() -> None:
    assert merge_moments([[5.0, 6.0, 0.5]], duration=4.0, nms_iou=0.5) == ()


# --- the model sees training-style windows ---------------------------------------------------------------


class _Recorder(nn.Module):
    """Echoes a fixed span (0.4..0.6 of the window) and saliency = the first video feature column."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, src_txt: Any, src_txt_mask: Any, src_vid: Any, src_vid_mask: Any) -> dict[str, Any]:
        self.seen.append(src_vid.clone())
        b = src_vid.shape[0]
        logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]]).expand(b, 2, 2)  # (B, Q, 2)
        spans = torch.tensor([[0.5, 0.2], [0.5, 1.0]]).expand(b, 2, 2)  # (B, Q, 2) center, width
        return {"pred_logits": logits, "pred_spans": spans, "saliency_scores": src_vid[..., 0]}


def test_windows_carry_their_own_tef_and_normalised_rows_and_map_back_to_absolute_time() -> None:
    n, window = 50, 20
    angles = np.linspace(0, np.pi / 2, n)
    raw = np.zeros((n, 16), dtype=np.float32)
    raw[:, 0], raw[:, 1] = 3 * np.cos(angles), 3 * np.sin(angles)  # norm 3: normalisation matters
    text = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32)  # 20 tokens > max_q_l 16
    model = _Recorder()
    settings = WindowSettings(window=window, stride=10, nms_iou=0.5, batch_size=2)
    (result,) = ground_windows(model, [raw], [text], _spec(), duration=99.0, settings=settings)
    windows = plan_windows(n, window, 10)
    assert windows == ((0, 20), (10, 30), (20, 40), (30, 50))
    seen = torch.cat(model.seen).numpy()  # (windows, w, 18)
    assert seen.shape == (4, window, 18)
    for (start, end), inputs in zip(windows, seen, strict=True):
        np.testing.assert_allclose(inputs[:, :16], l2_normalize(raw[start:end]), atol=1e-6)
        np.testing.assert_allclose(inputs[:, 16:], temporal_endpoint_feature(window), atol=1e-7)
    # saliency = first normalised column, whatever window a clip was read in
    np.testing.assert_allclose(result.saliency, l2_normalize(raw)[:, 0], atol=1e-6)
    # the confident slot spans 0.4..0.6 of each 40 s window: [16, 24] s after its start (on the clip grid)
    best = [m for m in result.moments if m[2] > 0.5]
    assert sorted(m[:2] for m in best) == [(16.0, 24.0), (36.0, 44.0), (56.0, 64.0), (76.0, 84.0)]
    assert all(0 <= s < e <= 99.0 for s, e, _ in result.moments)
    scores = [m[2] for m in result.moments]
    assert scores == sorted(scores, reverse=True)


def test_one_window_equals_a_single_official_forward_pass() -> None:
    torch.manual_seed(0)
    model = build_backbone(tiny_moment_detr_config()).eval()
    rng = np.random.default_rng(1)
    raw, text = rng.normal(size=(13, 16)).astype(np.float32), rng.normal(size=(7, 12)).astype(np.float32)
    spec = _spec()
    (result,) = ground_windows(model, [raw], [text], spec, duration=25.0, settings=WindowSettings(window=20))
    video = np.concatenate([l2_normalize(raw), temporal_endpoint_feature(13)], axis=1)[None]  # (1, 13, 18)
    with torch.no_grad():
        outputs = model(
            src_txt=torch.from_numpy(l2_normalize(text))[None],
            src_txt_mask=torch.ones(1, 7),
            src_vid=torch.from_numpy(video),
            src_vid_mask=torch.ones(1, 13),
        )
    np.testing.assert_allclose(result.saliency, outputs["saliency_scores"][0].numpy(), atol=1e-5)
    (row,) = predictions_from_outputs(
        outputs, torch.ones(1, 13), [QueryMeta(0, "", "", 26.0)], PredictionSettings(max_ts_val=None)
    )
    assert result.moments == merge_moments(row["pred_relevant_windows"], duration=25.0, nms_iou=0.5)


def test_long_video_on_a_tiny_model_stays_inside_the_video() -> None:
    torch.manual_seed(0)
    model = build_backbone(tiny_moment_detr_config()).eval()
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(97, 16)).astype(np.float32)
    texts = [rng.normal(size=(k, 12)).astype(np.float32) for k in (3, 9)]
    results = ground_windows(model, [raw], texts, _spec(), duration=193.3, settings=WindowSettings(window=20))
    assert len(results) == 2
    for result in results:
        assert result.saliency.shape == (97,) and np.isfinite(result.saliency).all()
        assert result.moments and all(0 <= s < e <= 193.3 for s, e, _ in result.moments)
        scores = [m[2] for m in result.moments]
        assert scores == sorted(scores, reverse=True)


def test_bad_calls_are_refused_with_the_reason() -> None:
    model = _Recorder()
    raw, text = np.ones((5, 16), np.float32), np.ones((3, 12), np.float32)
    with pytest.raises(InvalidValueError, match="longer than the model's max_v_l 20"):
        ground_windows(model, [raw], [text], _spec(), duration=10.0, settings=WindowSettings(window=30))
    with pytest.raises(InvalidValueError, match="2 video feature streams given; the spec lists 1"):
        ground_windows(model, [raw, raw], [text], _spec(), duration=10.0)
    with pytest.raises(InvalidValueError, match="duration 0.0 is invalid"):
        ground_windows(model, [raw], [text], _spec(), duration=0.0, settings=WindowSettings(window=20))
    with pytest.raises(InvalidValueError, match="no query"):
        ground_windows(model, [raw], [], _spec(), duration=10.0, settings=WindowSettings(window=20))
