"""Which positions a recurrent adapter may run over, for the forward pass in progress.

READ's recurrence runs along time inside each modality segment and never over padding. A wrapped
feed-forward linear sees only a tensor, so the backbone publishes, before each forward, a segment-id
tensor per stream ("encoder", "decoder", ...):

    segment_ids: (B, T) long; -1 marks padding, 0, 1, ... number the segments (e.g. 0 = video,
    1 = text for Moment-DETR's concatenated [video; text] encoder input). Positions of one segment
    are read in increasing position order.

A stream with no published ids is one segment of all-valid positions; that is exact for
right-padded sequences, because a left-to-right recurrence never sees positions after a valid one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class SequenceContext:
    """Segment ids per stream, set by the backbone's forward and read by READ adapters."""

    def __init__(self) -> None:
        self._segments: dict[str, torch.Tensor] = {}

    def set(self, stream: str, segment_ids: torch.Tensor | None) -> None:
        if segment_ids is None:
            self._segments.pop(stream, None)
        else:
            self._segments[stream] = segment_ids

    def get(self, stream: str) -> torch.Tensor | None:
        return self._segments.get(stream)

    def clear(self) -> None:
        self._segments.clear()

    @contextmanager
    def use(self, **streams: torch.Tensor | None) -> Iterator[SequenceContext]:
        """Publish segment ids for the duration of a `with` block, restoring the previous ones after."""
        previous = dict(self._segments)
        try:
            for stream, ids in streams.items():
                self.set(stream, ids)
            yield self
        finally:
            self._segments = previous


def segment_ids_from_masks(*masks: torch.Tensor) -> torch.Tensor:
    """Consecutive segments' validity masks (B, T_i) bool -> (B, sum T_i) long ids, -1 for padding."""
    parts = []
    for index, mask in enumerate(masks):
        ids = torch.full(mask.shape, index, dtype=torch.long, device=mask.device)  # (B, T_i)
        parts.append(ids.masked_fill(~mask.bool(), -1))
    return torch.cat(parts, dim=1)  # (B, T)
