"""The clip rule: how a video's frames map to fixed-length clips, and which frame stands for each clip.

Every frame belongs to the clip its start time falls in (clip k covers [k·L, (k+1)·L) seconds, times
measured from the first frame); the clip count is the clip of the last frame plus one, so a video
shorter than one clip has one clip, and a 3.33 s video at L = 2 has two. A clip is represented by
the middle one of its frames. See docs/features.md for the reasoning and the alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from readcli.errors import InputFileError, InvalidValueError

# Stored in every metadata file, so features made under a different rule are never mixed up.
CLIP_RULE = "start-time-bins/middle-frame/v1"

# Container timestamps are floats: a frame that starts at 2.0 s may read 1.9999999; this much slack
# (well under a frame at any real frame rate) keeps it in the clip it belongs to.
_TIME_SLACK_S = 1e-4


@dataclass(frozen=True)
class ClipPlan:
    """Which frame to decode for each clip, and the timing facts recorded in the metadata."""

    clip_len: float
    n_frames: int
    fps: float
    duration: float
    frame_indices: tuple[int, ...]

    @property
    def n_clips(self) -> int:
        return len(self.frame_indices)


# Clip lengths readcli accepts: a tiny one (1e-300) would size the clip table by duration / clip_len.
CLIP_LEN_RANGE = (0.01, 3600.0)


def check_clip_len(clip_len: float) -> float:
    """Refuse a clip length that is not a positive, finite number of seconds within CLIP_LEN_RANGE."""
    low, high = CLIP_LEN_RANGE
    if not np.isfinite(clip_len) or clip_len <= 0 or not low <= clip_len <= high:
        raise InvalidValueError(
            f"--clip-len {clip_len} is invalid: use a positive number of seconds in [{low:g}, {high:g}] "
            "(e.g. 2)"
        )
    return float(clip_len)


def frame_starts(n_frames: int, fps: float, timestamps: np.ndarray | None = None) -> np.ndarray:
    """Start time of every frame in seconds from the first frame: container times when usable.

    `timestamps` is decord's (N, 2) [start, end] array. Times that are not finite or go backwards
    (broken containers) are replaced by the constant-rate times i / fps.
    """
    if n_frames <= 0:
        raise InputFileError(f"the video has {n_frames} frames")
    if timestamps is not None and timestamps.shape == (n_frames, 2):
        starts = timestamps[:, 0].astype(np.float64) - float(timestamps[0, 0])
        if np.isfinite(starts).all() and (np.diff(starts) >= 0).all():
            return starts
    if not np.isfinite(fps) or fps <= 0:
        raise InputFileError(f"the video reports frame rate {fps} and no usable timestamps")
    return np.arange(n_frames, dtype=np.float64) / fps


def plan_clips(
    n_frames: int, fps: float, clip_len: float, *, timestamps: np.ndarray | None = None
) -> ClipPlan:
    """Apply the clip rule to a video of `n_frames` frames (see the module docstring)."""
    clip_len = check_clip_len(clip_len)
    starts = frame_starts(n_frames, fps, timestamps)  # (N,)
    n_clips = int((starts[-1] + _TIME_SLACK_S) // clip_len) + 1
    bounds = np.arange(n_clips + 1, dtype=np.float64) * clip_len - _TIME_SLACK_S  # (C+1,)
    first = np.searchsorted(starts, bounds[:-1], side="left")  # (C,) first frame of each clip
    last = np.searchsorted(starts, bounds[1:], side="left") - 1  # (C,) last frame of each clip
    middle = (first + last) // 2
    # A clip with no frame of its own (a gap in a variable-rate video) shows the frame on screen.
    empty = last < first
    middle[empty] = np.maximum(first[empty] - 1, 0)
    if timestamps is not None and timestamps.shape == (n_frames, 2) and np.isfinite(timestamps).all():
        duration = float(timestamps[-1, 1] - timestamps[0, 0])
    else:
        duration = n_frames / fps if fps > 0 else float(starts[-1])
    return ClipPlan(
        clip_len=clip_len,
        n_frames=n_frames,
        fps=float(fps),
        duration=max(duration, float(starts[-1])),
        frame_indices=tuple(int(i) for i in middle),
    )
