"""Which positions a recurrent adapter may run over, for the forward pass in progress.

READ's recurrence runs along time inside each modality segment and never over padding. A wrapped
feed-forward linear sees only a tensor, so the backbone publishes, before each forward, a segment-id
tensor per stream ("encoder", "decoder", ...):

    segment_ids: (B, T) long; -1 marks padding, 0, 1, ... number the segments (e.g. 0 = video,
    1 = text for Moment-DETR's concatenated [video; text] encoder input). Positions of one segment
    are read in increasing position order.

A stream with no published ids is one segment of all-valid positions; that is exact for
right-padded sequences, because a left-to-right recurrence never sees positions after a valid one.

A decoder that runs incrementally with a key-value cache publishes the cache length of its stream
(`set_past_length`): READ then refuses to run, because its recurrence would restart at every token
(docs/adapters.md, "Generation").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class SequenceContext:
    """Segment ids per stream, set by the backbone's forward and read by READ adapters."""

    def __init__(self) -> None:
        self._segments: dict[str, torch.Tensor] = {}
        self._past: dict[str, int] = {}
        # stream -> (the ids tensor a derived value was built from, that value)
        self._derived: dict[str, tuple[torch.Tensor, Any]] = {}

    def set(self, stream: str, segment_ids: torch.Tensor | None) -> None:
        if segment_ids is None:
            self._segments.pop(stream, None)
        else:
            self._segments[stream] = segment_ids

    def get(self, stream: str) -> torch.Tensor | None:
        return self._segments.get(stream)

    def clear(self) -> None:
        self._segments.clear()
        self._past.clear()
        self._derived.clear()

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

    def set_past_length(self, stream: str, length: int) -> None:
        """Publish how many positions of `stream` a key-value cache already holds (0 = none)."""
        if length:
            self._past[stream] = int(length)
        else:
            self._past.pop(stream, None)

    def past_length(self, stream: str) -> int:
        return self._past.get(stream, 0)

    def derived(self, stream: str, segment_ids: torch.Tensor, build: Callable[[torch.Tensor], T]) -> T:
        """`build(segment_ids)`, computed once per published ids tensor and shared by all blocks.

        Every adapter of a stream sees the same ids in one forward pass; the cache is keyed on the
        tensor's identity, so publishing new ids (or restoring old ones) never returns a stale value.
        """
        cached = self._derived.get(stream)
        if cached is not None and cached[0] is segment_ids:
            return cached[1]
        value = build(segment_ids)
        self._derived[stream] = (segment_ids, value)
        return value


def segment_ids_from_masks(*masks: torch.Tensor) -> torch.Tensor:
    """Consecutive segments' validity masks (B, T_i) bool -> (B, sum T_i) long ids, -1 for padding."""
    parts = []
    for index, mask in enumerate(masks):
        ids = torch.full(mask.shape, index, dtype=torch.long, device=mask.device)  # (B, T_i)
        parts.append(ids.masked_fill(~mask.bool(), -1))
    return torch.cat(parts, dim=1)  # (B, T)
