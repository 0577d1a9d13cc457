"""What the adapters may ask of a backbone: where its blocks are, which positions form one sequence
for a recurrence, and whether a key-value cache is usable. The backbone side owns this contract;
`readcli.adapters` imports it from here, and nothing in `readcli.backbones` imports the adapters.

- `AdapterTargets` (from `adapter_targets()`) names, by regex on full module names, the modules each
  fine-tuning method may touch: the feed-forward output linears (whose *input* is the feed-forward
  block's inner activation), the attention key/value projections, the last layers, the task
  projections, the linears LoRA wraps, the new task heads and the prompt widths.
- `SequenceContext` (the backbone's `sequence_context`) carries, for the forward pass in progress, a
  segment-id tensor per stream ("encoder", "decoder", ...):

      segment_ids: (B, T) long; -1 marks padding, 0, 1, ... number the segments (e.g. 0 = video,
      1 = text for Moment-DETR's concatenated [video; text] encoder input). Positions of one segment
      are read in increasing position order.

  A stream with no published ids is one segment of all-valid positions; that is exact for
  right-padded sequences, because a left-to-right recurrence never sees positions after a valid one.
  A decoder that runs incrementally with a key-value cache publishes the cache length of its stream
  (`set_past_length`). An installer that adds a sequence-mixing adapter (READ's recurrence) marks the
  context (`mark_sequence_mixing`); the backbone then reads `kv_cache_usable` before generating,
  because such an adapter cannot run one token at a time (docs/adapters.md, "Generation").

Dimension letters: B batch, T positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class FeedForwardTarget:
    """The feed-forward output linears of a group of blocks (where READ and Houlsby adapters go).

    pattern: regex matched with `re.fullmatch` against module names, e.g.
        r"transformer\\.encoder\\.layers\\.\\d+\\.linear2". The linear's input is the block's inner
        activation (after the nonlinearity), which (IA)^3 rescales.
    stream: the name under which the backbone publishes this group's segment ids in its
        `sequence_context` ("encoder", "decoder", ...).
    batch_first: True if the linear sees (B, T, d), False for (T, B, d).
    """

    pattern: str
    stream: str
    batch_first: bool


@dataclass(frozen=True)
class PromptSpec:
    """Where prompt tuning prepends learnable tokens: their width on the video and the text side."""

    video_dim: int
    text_dim: int


@dataclass(frozen=True)
class AdapterTargets:
    """What a backbone offers each fine-tuning method. All names are regexes for `re.fullmatch`."""

    feed_forward: tuple[FeedForwardTarget, ...]
    # modules of the last encoder and the last decoder layer ("partial")
    partial: tuple[str, ...]
    # the last linear projection(s) before the task outputs ("proj")
    projection: tuple[str, ...]
    # nn.Linear modules LoRA wraps (must be called through their forward, so not the
    # nn.MultiheadAttention out_proj, whose weight the attention reads directly)
    lora: tuple[str, ...]
    # modules new to the backbone for this task: always trainable and saved in the bundle
    new_heads: tuple[str, ...] = ()
    prompt: PromptSpec | None = None
    # extra attributes recorded in bundles to refuse a bundle made for another backbone
    extra: dict[str, str] = field(default_factory=dict)
    # modules that compute attention keys or values, called through their forward: an nn.Linear
    # (a key or a value projection) or an nn.MultiheadAttention (its packed key and value rows)
    key_value: tuple[str, ...] = ()


class SequenceContext:
    """Segment ids per stream, set by the backbone's forward and read by READ adapters."""

    def __init__(self) -> None:
        self._segments: dict[str, torch.Tensor] = {}
        self._past: dict[str, int] = {}
        # stream -> (the ids tensor a derived value was built from, that value)
        self._derived: dict[str, tuple[torch.Tensor, Any]] = {}
        self._sequence_mixing = False

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

    def mark_sequence_mixing(self) -> None:
        """Called by an installer whose adapter mixes positions along time (READ's recurrence)."""
        self._sequence_mixing = True

    @property
    def kv_cache_usable(self) -> bool:
        """False once a sequence-mixing adapter is installed: decoding must recompute every position."""
        return not self._sequence_mixing

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
