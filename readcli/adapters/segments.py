"""Gathering each segment's valid positions into its own row, and scattering them back.

READ runs one recurrence per (batch row, segment): the valid positions of a segment, in position
order, form one sequence. `SegmentPlan` turns a (B, T) segment-id tensor into index tensors that move
a (B, T, k) tensor into (R, L, k) rows (R = B * S sequences front-aligned, zero-padded to the longest
length L) and back. A left-to-right recurrence over front-aligned rows is exact at valid positions
without packing, because the zero padding comes after them; skipping `pack_padded_sequence` also
skips its host-side lengths. The plan is built once per forward and shared by all blocks of a stream.

Dimension letters: B batch, T positions, S segments per row, R = B * S sequences, L longest segment,
V valid positions in the batch, k channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from readcli.errors import InvalidValueError


@dataclass(frozen=True)
class SegmentPlan:
    """Index tensors for one segment-id tensor; `pack` and `unpack` invert each other on valid positions."""

    batch: int
    length: int  # T
    rows: int  # R = B * S
    row_length: int  # L
    source: torch.Tensor  # (V,) flat index b * T + t of every valid position
    target: torch.Tensor  # (V,) flat index r * L + rank of the same position in the packed rows

    @classmethod
    def build(cls, segment_ids: torch.Tensor) -> SegmentPlan:
        """Plan for ids (B, T): -1 padding, 0.. segment numbers; positions kept in increasing order."""
        check_segment_ids(segment_ids)
        segment_ids = segment_ids.long()
        batch, length = segment_ids.shape
        valid = segment_ids >= 0  # (B, T)
        # The only host synchronisations of a READ forward, once per stream: S, L and V.
        n_segments = int(segment_ids.max()) + 1 if segment_ids.numel() else 0
        if n_segments <= 0:  # nothing valid
            empty = segment_ids.new_zeros(0)
            return cls(batch, length, 0, 0, empty, empty)
        seg = segment_ids.clamp(min=0)  # (B, T)
        member = F.one_hot(seg, n_segments) & valid.unsqueeze(-1)  # (B, T, S)
        rank = member.cumsum(dim=1).gather(2, seg.unsqueeze(-1)).squeeze(-1) - 1  # (B, T)
        row_length = int(member.sum(dim=1).max())
        row = torch.arange(batch, device=seg.device).unsqueeze(1) * n_segments + seg  # (B, T)
        source = valid.reshape(-1).nonzero().squeeze(1)  # (V,)
        target = (row * row_length + rank).reshape(-1).index_select(0, source)  # (V,)
        return cls(batch, length, batch * n_segments, row_length, source, target)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, k) -> (R, L, k): each segment's valid positions, front-aligned, zeros after."""
        channels = x.shape[-1]
        flat = x.reshape(self.batch * self.length, channels).index_select(0, self.source)  # (V, k)
        rows = x.new_zeros(self.rows * self.row_length, channels)  # (R * L, k)
        rows = rows.index_copy(0, self.target, flat)  # (R * L, k)
        return rows.view(self.rows, self.row_length, channels)  # (R, L, k)

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """(R, L, k) -> (B, T, k): values back at their positions, exact zeros at padding."""
        channels = rows.shape[-1]
        flat = rows.reshape(self.rows * self.row_length, channels).index_select(0, self.target)  # (V, k)
        out = rows.new_zeros(self.batch * self.length, channels)  # (B * T, k)
        out = out.index_copy(0, self.source, flat)  # (B * T, k)
        return out.view(self.batch, self.length, channels)  # (B, T, k)


def check_segment_ids(segment_ids: torch.Tensor) -> None:
    """Refuse ids that are not a (B, T) integer tensor."""
    if segment_ids.dim() != 2:
        raise InvalidValueError(
            f"segment ids must be a (batch, length) tensor, found shape {tuple(segment_ids.shape)}"
        )
    if segment_ids.dtype.is_floating_point or segment_ids.dtype.is_complex or segment_ids.dtype == torch.bool:
        raise InvalidValueError(
            "segment ids must be integers (-1 = padding, 0, 1, ... = segments), "
            f"found dtype {segment_ids.dtype}"
        )
