"""The clip rule: frames to clips, the middle frame of each clip, and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from readcli.errors import InputFileError, InvalidValueError
from readcli.features.clips import CLIP_RULE, check_clip_len, plan_clips


def _timestamps(starts: list[float] | np.ndarray, frame: float) -> np.ndarray:
    starts = np.asarray(starts, dtype=np.float64)
    return np.stack([starts, starts + frame], axis=1)  # (N, 2)


@pytest.mark.parametrize(
    ("n_frames", "expected"),
    [
        (1, [0]),  # shorter than one clip: one clip
        (60, [29]),  # exactly one clip
        (61, [29, 60]),  # one frame into the second clip opens it
        (100, [29, 79]),  # 3.33 s: the real clips' case, the tail clip keeps its own middle
        (120, [29, 89]),  # 4.00 s
        (121, [29, 89, 120]),
    ],
)
def test_middle_frame_of_each_clip_at_30_fps(n_frames: int, expected: list[int]) -> None:
    plan = plan_clips(n_frames, 30.0, 2.0)
    assert list(plan.frame_indices) == expected
    assert plan.n_clips == len(expected)
    assert plan.duration == pytest.approx(n_frames / 30.0)


def test_clip_count_is_frames_bins_not_rounded_duration() -> None:
    # 150 s at 29.97 fps is 4495.5 frames; 4496 frames end at 150.017 s yet start within 75 clips.
    plan = plan_clips(4496, 30000 / 1001, 2.0)
    assert plan.n_clips == 75
    assert math.ceil(plan.duration / 2.0) == 76  # what ceil(duration / clip_len) would have said
    assert all(0 <= i < 4496 for i in plan.frame_indices)
    assert list(plan.frame_indices) == sorted(plan.frame_indices)


def test_timestamps_are_used_and_float_noise_is_absorbed() -> None:
    starts = np.arange(120) / 30.0
    starts[60] = 2.0 - 1e-7  # a container time that reads just under the boundary
    plan = plan_clips(120, 30.0, 2.0, timestamps=_timestamps(starts, 1 / 30))
    assert list(plan.frame_indices) == [29, 89]


def test_offset_start_time_is_measured_from_the_first_frame() -> None:
    starts = 10.0 + np.arange(100) / 25.0
    plan = plan_clips(100, 25.0, 2.0, timestamps=_timestamps(starts, 0.04))
    assert list(plan.frame_indices) == [24, 74]
    assert plan.duration == pytest.approx(4.0)


def test_variable_frame_rate_gap_shows_the_frame_on_screen() -> None:
    # Frames at 0..1.9 s every 0.1 s, then nothing until 6.0 s: clips 1 and 2 have no frame of their own.
    starts = [*(i / 10 for i in range(20)), 6.0, 6.1]
    plan = plan_clips(len(starts), 10.0, 2.0, timestamps=_timestamps(starts, 0.1))
    assert plan.n_clips == 4
    assert list(plan.frame_indices) == [9, 19, 19, 20]


def test_backwards_timestamps_fall_back_to_frame_rate() -> None:
    starts = np.arange(100) / 30.0
    starts[50] = 0.0
    plan = plan_clips(100, 30.0, 2.0, timestamps=_timestamps(starts, 1 / 30))
    assert list(plan.frame_indices) == [29, 79]


@pytest.mark.parametrize("clip_len", [0.0, -2.0, float("nan"), float("inf")])
def test_bad_clip_length_is_refused(clip_len: float) -> None:
    with pytest.raises(InvalidValueError, match="--clip-len"):
        check_clip_len(clip_len)


def test_no_frames_or_no_rate_is_an_input_error() -> None:
    with pytest.raises(InputFileError, match="0 frames"):
        plan_clips(0, 30.0, 2.0)
    with pytest.raises(InputFileError, match="frame rate"):
        plan_clips(10, 0.0, 2.0)


def test_rule_has_a_versioned_name() -> None:
    assert CLIP_RULE.endswith("/v1")
