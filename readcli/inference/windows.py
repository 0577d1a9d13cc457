"""Grounding a whole video with a backbone that sees at most `window` clips: overlapping windows, merged.

Dimension letters: N clips of the whole video, w clips of one window, S feature streams, D_s one
stream's width, D_v model video width (streams + TEF), N_L query tokens, D_t text width, B (query,
window) pairs in a batch, Q moment slots.

Each window is assembled exactly as a training item is (`readcli.data.features.assemble_video`: L2
per stream, then the TEF over the window's own clips), so the model sees what it was trained on.
Spans come out of the official post-processing per window, are shifted to absolute seconds, clipped
to the video and merged with temporal NMS; saliency is stitched by a centre-weighted average.
The method and its choices: docs/ground.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from readcli.data.collate import pad_rows
from readcli.data.feature_spec import VideoFeatureSpec
from readcli.data.features import assemble_video, prepare_text
from readcli.errors import InvalidValueError
from readcli.training.grounding_predict import (
    PredictionSettings,
    QueryMeta,
    predictions_from_outputs,
    temporal_nms,
)

log = logging.getLogger(__name__)

Window = tuple[int, int]  # [first clip, end clip) of one window


@dataclass(frozen=True)
class WindowSettings:
    """How a long video is cut and merged; see docs/ground.md for why these defaults."""

    window: int = 75  # clips per window: the backbone's max_v_l
    stride: int | None = None  # clips between window starts; None: half a window (50 % overlap)
    nms_iou: float = 0.5  # windows overlapping a better one by more than this IoU are dropped
    batch_size: int = 16  # (query, window) pairs per forward pass

    def __post_init__(self) -> None:
        for name in ("window", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"{name} {value!r} is invalid: use an integer >= 1")
        stride = self.stride
        if stride is not None and (
            isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= self.window
        ):
            raise InvalidValueError(
                f"stride {stride!r} is invalid: use an integer in 1..{self.window} (the window), or none"
            )
        if not (math.isfinite(self.nms_iou) and 0 <= self.nms_iou <= 1):
            raise InvalidValueError(f"NMS IoU {self.nms_iou} is invalid: use a value in [0, 1]")

    @property
    def step(self) -> int:
        return self.stride if self.stride is not None else max(1, self.window // 2)


@dataclass(frozen=True)
class WindowedGrounding:
    """One query over the whole video: merged moments and the stitched saliency curve."""

    moments: tuple[tuple[float, float, float], ...]  # (start s, end s, score), best first
    saliency: np.ndarray  # (N,) float32, one score per clip


def plan_windows(n_clips: int, window: int, stride: int) -> tuple[Window, ...]:
    """Full-length windows every `stride` clips; the last is moved back to end at the last clip.

    A video of at most `window` clips is one window over all of it.
    """
    if n_clips < 1:
        raise InvalidValueError(f"a video needs at least 1 clip to ground, found {n_clips}")
    if window < 1 or not 1 <= stride <= window:
        raise InvalidValueError(f"window {window} / stride {stride} are invalid: use 1 <= stride <= window")
    if n_clips <= window:
        return ((0, n_clips),)
    starts = list(range(0, n_clips - window + 1, stride))
    if starts[-1] + window < n_clips:
        starts.append(n_clips - window)  # the tail gets a full window too, not a short one
    return tuple((start, start + window) for start in starts)


def centre_weights(length: int) -> np.ndarray:
    """(w,) triangular weights, highest mid-window: a clip's context is fullest far from the edges."""
    index = np.arange(length, dtype=np.float64)  # (w,)
    return np.minimum(index + 1, length - index)  # (w,) >= 1 everywhere


def stitch_saliency(n_clips: int, windows: Sequence[Window], scores: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) per-clip saliency: the centre-weighted mean of every window's score for that clip."""
    total = np.zeros(n_clips, dtype=np.float64)  # (N,)
    weight = np.zeros(n_clips, dtype=np.float64)  # (N,)
    for (start, end), row in zip(windows, scores, strict=True):
        if len(row) != end - start:
            raise InvalidValueError(f"window [{start}, {end}) has {len(row)} saliency scores")
        w = centre_weights(end - start)  # (w,)
        total[start:end] += w * row
        weight[start:end] += w
    if (weight == 0).any():
        missing = int(np.flatnonzero(weight == 0)[0])
        raise InvalidValueError(f"the windows leave clip {missing} of {n_clips} uncovered")
    return (total / weight).astype(np.float32)  # (N,)


def merge_moments(
    rows: Sequence[Sequence[float]], *, duration: float, nms_iou: float
) -> tuple[tuple[float, float, float], ...]:
    """Absolute [start, end, score] rows from every window -> clipped to the video, NMS-merged, best first.

    Rows that clip to zero length (wholly past the end, or rounded to a point) are dropped: they
    say nothing about where the moment is.
    """
    kept = []
    for start, end, score in rows:
        start, end = min(max(start, 0.0), duration), min(max(end, 0.0), duration)
        if end > start:
            kept.append([round(start, 4), round(end, 4), float(score)])
    if not kept:
        return ()
    merged = temporal_nms(kept, nms_iou, max_after_nms=len(kept))
    return tuple((float(s), float(e), float(c)) for s, e, c in merged)


def _window_inputs(
    streams: Sequence[np.ndarray], windows: Sequence[Window], spec: VideoFeatureSpec
) -> list[np.ndarray]:
    """Per window, the (w, D_v) model input built by the training code path (TEF over the window)."""
    return [assemble_video([s[a:b] for s in streams], spec, num_clips=b - a) for a, b in windows]


def _run_batches(
    model: nn.Module,
    pairs: list[tuple[int, int]],
    videos: list[np.ndarray],
    texts: list[np.ndarray],
    windows: Sequence[Window],
    clip_len: float,
    batch_size: int,
) -> tuple[list[list[list[float]]], list[np.ndarray]]:
    """Forward every (query, window) pair; per pair its window-relative rows and float saliency."""
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    settings = PredictionSettings(clip_length=clip_len, max_ts_val=None)
    rows: list[list[list[float]]] = []
    saliency: list[np.ndarray] = []
    for begin in range(0, len(pairs), batch_size):
        chunk = pairs[begin : begin + batch_size]
        src_vid, vid_mask = pad_rows([videos[w] for _, w in chunk])  # (B, w, D_v), (B, w)
        src_txt, txt_mask = pad_rows([texts[q] for q, _ in chunk])  # (B, N_L, D_t), (B, N_L)
        with torch.inference_mode():
            outputs = model(
                src_txt=src_txt.to(device=device, dtype=dtype),
                src_txt_mask=txt_mask.to(device),
                src_vid=src_vid.to(device=device, dtype=dtype),
                src_vid_mask=vid_mask.to(device),
            )
        metas = [
            QueryMeta(qid=q, query="", vid="", duration=(windows[w][1] - windows[w][0]) * clip_len)
            for q, w in chunk
        ]
        for prediction in predictions_from_outputs(outputs, vid_mask, metas, settings):
            rows.append(prediction["pred_relevant_windows"])
        scores = outputs["saliency_scores"].float().cpu().numpy()  # (B, w)
        saliency.extend(scores[i, : windows[w][1] - windows[w][0]] for i, (_, w) in enumerate(chunk))
    return rows, saliency


def ground_windows(
    model: nn.Module,
    streams: Sequence[np.ndarray],
    queries: Sequence[np.ndarray],
    spec: VideoFeatureSpec,
    *,
    duration: float,
    settings: WindowSettings | None = None,
) -> list[WindowedGrounding]:
    """Ground every query over a whole video of any length, one result per query (module docstring).

    streams: raw per-clip features of the video, one (N, D_s) array per spec stream (normalised here);
    queries: raw token features, one (N_L, D_t) array per query; duration: the video's length (s).
    """
    settings = settings if settings is not None else WindowSettings()
    if len(streams) != len(spec.streams):
        raise InvalidValueError(
            f"{len(streams)} video feature streams given; the spec lists {len(spec.streams)}: "
            f"{', '.join(spec.stream_names)}"
        )
    if spec.max_v_l is not None and settings.window > spec.max_v_l:
        raise InvalidValueError(
            f"window {settings.window} clips is longer than the model's max_v_l {spec.max_v_l}"
        )
    if not (math.isfinite(duration) and duration > 0):
        raise InvalidValueError(f"video duration {duration} is invalid: use seconds > 0")
    if not queries:
        raise InvalidValueError("no query to ground: give at least one")
    n_clips = min(len(s) for s in streams)
    windows = plan_windows(n_clips, settings.window, settings.step)
    videos = _window_inputs(streams, windows, spec)  # per window (w, D_v)
    texts = [prepare_text(q, spec) for q in queries]  # per query (N_L, D_t)
    pairs = [(q, w) for q in range(len(queries)) for w in range(len(windows))]
    log.info("grounding %d clips in %d windows for %d queries", n_clips, len(windows), len(queries))
    was_training = model.training
    model.eval()
    try:
        rows, saliency = _run_batches(
            model, pairs, videos, texts, windows, spec.clip_len, settings.batch_size
        )
    finally:
        model.train(was_training)
    results = []
    for q in range(len(queries)):
        absolute: list[list[float]] = []
        for index, (q_i, w) in enumerate(pairs):
            if q_i == q:
                offset = windows[w][0] * spec.clip_len
                absolute.extend([s + offset, e + offset, c] for s, e, c in rows[index])
        curve = stitch_saliency(
            n_clips, windows, [saliency[i] for i, (q_i, _) in enumerate(pairs) if q_i == q]
        )
        moments = merge_moments(absolute, duration=duration, nms_iou=settings.nms_iou)
        results.append(WindowedGrounding(moments=moments, saliency=curve))
    return results
