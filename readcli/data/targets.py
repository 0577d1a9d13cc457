"""Training targets for grounding and highlight detection, built per item from an annotation.

Dimension letters: N_V clips of the (truncated) video, W relevant windows, P saliency pairs.

- `span_labels`: relevant windows as normalised (center, width), like the official `span_labels`,
  but windows are first clipped to the video (the official divides by the video length and can
  produce spans past 1 when features are shorter than the annotation).
- `saliency_pairs`: the official Moment-DETR sampling for the margin-ranking loss: one hard pair
  (best vs worst scored clip) and one easy pair (a relevant clip vs a clip outside the relevant
  set) per `max_n`, from a seeded generator. Clips past the video are never drawn (the official
  clamps them to the last clip). See docs/data.md for the highlight datasets' variant.
- `saliency_vector`: the mean annotator score per clip, zero elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from readcli.data.annotations import MomentAnnotation


def span_labels(
    windows: tuple[tuple[float, float], ...],
    *,
    num_clips: int,
    clip_len: float,
    max_windows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(W, 2) float32 normalised (center, width) of the windows inside the video, at most max_windows."""
    length = num_clips * clip_len  # seconds covered by the features
    spans = np.asarray(windows, dtype=np.float64).reshape(-1, 2)  # (W, 2) seconds
    spans = np.clip(spans, 0.0, length)
    spans = spans[spans[:, 1] > spans[:, 0]]  # a window wholly past the features is gone
    if len(spans) > max_windows:  # the official shuffles and keeps the first max_windows
        keep = np.sort(rng.choice(len(spans), size=max_windows, replace=False))
        spans = spans[keep]
    spans = spans / length  # (W, 2) in [0, 1]
    center = spans.sum(axis=1) / 2  # (W,)
    width = spans[:, 1] - spans[:, 0]  # (W,)
    return np.stack([center, width], axis=1).astype(np.float32)  # (W, 2)


def relevant_from_windows(windows: tuple[tuple[float, float], ...], clip_len: float) -> tuple[int, ...]:
    """Clips that overlap a window: [floor(start / clip_len), ceil(end / clip_len) - 1]."""
    ids: set[int] = set()
    for start, end in windows:
        first, last = math.floor(start / clip_len), math.ceil(end / clip_len) - 1
        ids.update(range(first, max(first, last) + 1))
    return tuple(sorted(ids))


def saliency_vector(ann: MomentAnnotation, num_clips: int, *, clip_len: float) -> np.ndarray:
    """(N_V,) float32: each scored clip's mean annotator score, 0 elsewhere (1 inside windows when
    a row has windows but no clip scores)."""
    vector = np.zeros(num_clips, dtype=np.float32)  # (N_V,)
    ids, scores = _scored_clips(ann, clip_len)
    inside = ids < num_clips
    vector[ids[inside]] = scores[inside]
    return vector


def _scored_clips(ann: MomentAnnotation, clip_len: float) -> tuple[np.ndarray, np.ndarray]:
    if ann.clip_ids:
        return np.asarray(ann.clip_ids, dtype=np.int64), np.asarray(ann.clip_scores, dtype=np.float32)
    derived = np.asarray(relevant_from_windows(ann.windows or (), clip_len), dtype=np.int64)
    return derived, np.ones(len(derived), dtype=np.float32)


@dataclass(frozen=True)
class SaliencyPairs:
    """Clip indices for the margin-ranking loss: score(pos[i]) should beat score(neg[i]).

    valid is False when the labels rank nothing (every clip scored alike, or no labels); pos and neg
    are then all 0, which makes a margin-ranking loss constant (zero gradient) even if unmasked.
    """

    pos: np.ndarray  # (P,) int64
    neg: np.ndarray  # (P,) int64
    valid: bool


def saliency_pairs(
    ann: MomentAnnotation,
    num_clips: int,
    *,
    clip_len: float,
    rng: np.random.Generator,
    max_n: int = 1,
) -> SaliencyPairs:
    """P = 2 * max_n pairs: max_n hard then max_n easy, as the official `get_saliency_labels`."""
    if ann.format == "qvhighlights":
        ids, scores = _scored_clips(ann, clip_len)
        relevant = ids
    else:  # highlight datasets score every clip: rank them all (see docs/data.md)
        ids = np.arange(num_clips, dtype=np.int64)
        scores = saliency_vector(ann, num_clips, clip_len=clip_len)
        relevant = np.asarray(ann.relevant_ids, dtype=np.int64)
    inside = ids < num_clips
    ids, scores = ids[inside], scores[inside]
    relevant = relevant[relevant < num_clips]
    if len(ids) == 0 or (ann.format != "qvhighlights" and scores.max() == scores.min()):
        empty = np.zeros(2 * max_n, dtype=np.int64)
        return SaliencyPairs(pos=empty, neg=empty, valid=False)
    # ascending by score; ties in random order, so a tie does not always pick the same clip
    order = np.lexsort((rng.random(len(ids)), scores))
    hard_pos = np.resize(ids[order[::-1][:max_n]], max_n)  # (max_n,)
    hard_neg = np.resize(ids[order[:max_n]], max_n)  # (max_n,)
    outside = np.setdiff1d(np.arange(num_clips), relevant)
    if len(outside) >= max_n and len(relevant) > 0:
        easy_pos = rng.choice(relevant, size=max_n, replace=len(relevant) < max_n)
        easy_neg = rng.choice(outside, size=max_n, replace=False)
    else:  # nothing outside the relevant clips: the official copies the hard pair
        easy_pos, easy_neg = hard_pos, hard_neg
    pos = np.concatenate([hard_pos, easy_pos]).astype(np.int64)  # (P,)
    neg = np.concatenate([hard_neg, easy_neg]).astype(np.int64)  # (P,)
    return SaliencyPairs(pos=pos, neg=neg, valid=True)
