"""A map-style dataset of grounding / highlight items: one query, its video and text features, targets.

Dimension letters: N_V video clips, D_v video width, D_A audio width, N_L text tokens, D_t text width,
W windows, P saliency pairs.

Items are built on access (features are read lazily, a few videos cached), so 7,000 queries cost no
memory up front. Random choices (which windows when there are more than max_windows, which clips
form saliency pairs) come from a generator seeded by (seed, epoch, index): the same item is the same
in every run and every DataLoader worker, and differs from epoch to epoch like the official's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from readcli.data.annotations import MomentAnnotation
from readcli.data.feature_spec import VideoFeatureSpec
from readcli.data.features import FeatureReader
from readcli.data.targets import saliency_pairs, saliency_vector, span_labels
from readcli.errors import InvalidValueError


@dataclass(frozen=True, eq=False)
class MomentItem:
    """One query on one video, model-ready (numpy; `collate_moments` makes torch batches)."""

    qid: int | str
    vid: str
    query: str
    duration: float  # seconds
    domain: str | None
    video: np.ndarray  # (N_V, D_v) float32, TEF columns last when enabled
    text: np.ndarray  # (N_L, D_t) float32
    span_labels: np.ndarray  # (W, 2) float32 normalised (center, width); W may be 0
    saliency_pos: np.ndarray  # (P,) int64
    saliency_neg: np.ndarray  # (P,) int64
    saliency_valid: bool
    saliency: np.ndarray  # (N_V,) float32 mean annotator score per clip, 0 elsewhere
    has_labels: bool
    audio: np.ndarray | None = None  # (N_V, D_A) float32, the same clips as `video`; None: no audio


class MomentDataset:
    """Annotations + feature reader -> `MomentItem`s; `set_epoch` re-draws the random targets."""

    def __init__(
        self,
        annotations: Sequence[MomentAnnotation],
        reader: FeatureReader,
        *,
        max_windows: int = 5,
        saliency_max_n: int = 1,
        seed: int = 0,
    ) -> None:
        if max_windows < 1 or saliency_max_n < 1:
            raise InvalidValueError(
                f"max_windows ({max_windows}) and saliency_max_n ({saliency_max_n}) must be >= 1"
            )
        self.annotations = list(annotations)
        self.reader = reader
        self.max_windows = max_windows
        self.saliency_max_n = saliency_max_n
        self.seed = seed
        self.epoch = 0

    @property
    def spec(self) -> VideoFeatureSpec:
        return self.reader.spec

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> MomentItem:
        ann = self.annotations[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        video, audio = self.reader.clips(ann.vid, num_clips=ann.num_clips)  # (N_V, D_v), (N_V, D_A)
        num_clips = len(video)
        clip_len = self.spec.clip_len
        pairs = saliency_pairs(ann, num_clips, clip_len=clip_len, rng=rng, max_n=self.saliency_max_n)
        windows = ann.windows or ()
        spans = span_labels(
            windows, num_clips=num_clips, clip_len=clip_len, max_windows=self.max_windows, rng=rng
        )  # (W, 2)
        return MomentItem(
            qid=ann.qid,
            vid=ann.vid,
            query=ann.query,
            duration=ann.duration,
            domain=ann.domain,
            video=video,
            text=self.reader.text(ann),  # (N_L, D_t)
            span_labels=spans,
            saliency_pos=pairs.pos,
            saliency_neg=pairs.neg,
            saliency_valid=pairs.valid,
            saliency=saliency_vector(ann, num_clips, clip_len=clip_len),  # (N_V,)
            has_labels=ann.has_labels,
            audio=audio,
        )
