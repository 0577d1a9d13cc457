"""UMT's building blocks, written from the published UMT and nncore 0.3.x descriptions.

Module and parameter names follow the official state-dict layout (nncore's `MultiHeadAttention` with
`q`, `k`, `v`, `m`; `FeedForwardNetwork.mapping` = Linear, ReLU, Dropout, Linear, Dropout, so the
output linear is `mapping.3`; `LinearModule.linear`; a learnable position table `pe` of shape
(1, max_len, d)), so an official checkpoint can load without renaming (docs/umt.md says what could
be checked). Every tensor is batch-first.

Dimension letters: B batch, N query positions, M key positions, d width, h heads, D input width.
"""

from __future__ import annotations

import torch
from torch import nn

from readcli.errors import InvalidValueError


class PositionalEncoding(nn.Module):
    """nncore's learnable positions: the first N rows of a (1, max_len, d) table, with dropout."""

    def __init__(self, dims: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.empty(1, max_len, dims))
        nncore_table_(self.pe)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, d) -> positions (B, N, d) for its first N positions."""
        if x.shape[1] > self.pe.shape[1]:
            raise InvalidValueError(
                f"a sequence of {x.shape[1]} clips is longer than this UMT's position table "
                f"({self.pe.shape[1]} rows, config max_len)"
            )
        return self.dropout(self.pe[:, : x.shape[1]].expand(x.shape[0], -1, -1))  # (B, N, d)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with separate q/k/v/m linears; `mask` (B, M), 1 = valid key."""

    def __init__(self, dims: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dims, dims)
        self.k = nn.Linear(dims, dims)
        self.v = nn.Linear(dims, dims)
        self.m = nn.Linear(dims, dims)
        self.drop1 = nn.Dropout(dropout)  # on the attention map
        self.drop2 = nn.Dropout(dropout)  # on the output

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q (B, N, d), k and v (B, M, d) -> (B, N, d)."""
        batch, n_q, width = q.shape
        head = width // self.heads
        query = self.q(q).view(batch, n_q, self.heads, head).transpose(1, 2)  # (B, h, N, d/h)
        key = self.k(k).view(batch, -1, self.heads, head).transpose(1, 2)  # (B, h, M, d/h)
        value = self.v(v).view(batch, -1, self.heads, head).transpose(1, 2)  # (B, h, M, d/h)
        scores = query @ key.transpose(-1, -2) / head**0.5  # (B, h, N, M)
        if mask is not None:
            blocked = ~mask.bool()[:, None, None, :]  # (B, 1, 1, M)
            scores = scores.masked_fill(blocked, float("-inf"))
        attention = self.drop1(scores.softmax(-1))  # (B, h, N, M)
        mixed = (attention @ value).transpose(1, 2).reshape(batch, n_q, width)  # (B, N, d)
        return self.drop2(self.m(mixed))  # (B, N, d)


class FeedForwardNetwork(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear -> Dropout; `mapping.3` is the output linear (READ's target)."""

    def __init__(self, dims: int, ratio: int, dropout: float) -> None:
        super().__init__()
        hidden = dims * ratio
        self.mapping = nn.Sequential(
            nn.Linear(dims, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dims),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)  # (B, N, d)


class LinearModule(nn.Module):
    """nncore's LinearModule as `build_linear_modules([D, d])` makes it: a linear, optionally a LayerNorm.

    With the norm right after the linear, nncore drops the linear's bias (`bias='auto'`).
    """

    def __init__(self, in_dim: int, out_dim: int, *, norm: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=not norm)
        self.norm: nn.Module | None = nn.LayerNorm(out_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)  # (B, N, d)
        return self.norm(x) if self.norm is not None else x


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward, positions added to queries and keys."""

    def __init__(self, dims: int, heads: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.att = MultiHeadAttention(dims, heads, dropout)
        self.ffn = FeedForwardNetwork(dims, ratio, dropout)
        self.norm1 = nn.LayerNorm(dims)
        self.norm2 = nn.LayerNorm(dims)

    def forward(self, x: torch.Tensor, pe: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x, pe: (B, N, d); mask (B, N) -> (B, N, d)."""
        v = self.norm1(x)
        qk = v + pe  # one tensor for queries and keys as in nncore, so their gradients sum in its order
        x = x + self.att(qk, qk, v, mask)
        return x + self.ffn(self.norm2(x))  # (B, N, d)


class DecoderLayer(nn.Module):
    """Pre-norm query self-attention, attention to the memory, feed-forward."""

    def __init__(self, dims: int, heads: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.att1 = MultiHeadAttention(dims, heads, dropout)
        self.att2 = MultiHeadAttention(dims, heads, dropout)
        self.ffn = FeedForwardNetwork(dims, ratio, dropout)
        self.norm1 = nn.LayerNorm(dims)
        self.norm2 = nn.LayerNorm(dims)
        self.norm3 = nn.LayerNorm(dims)

    def forward(
        self, x: torch.Tensor, mem: torch.Tensor, q_pe: torch.Tensor, k_pe: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """x, q_pe: (B, N, d); mem, k_pe: (B, N, d) (UMT's queries are clip-aligned); mask (B, N)."""
        v = self.norm1(x)
        qk = v + q_pe  # shared by queries and keys, as officially (see EncoderLayer)
        x = x + self.att1(qk, qk, v, mask)
        x = x + self.att2(self.norm2(x) + q_pe, mem + k_pe, mem, mask)
        return x + self.ffn(self.norm3(x))  # (B, N, d)


class BottleneckLayer(nn.Module):
    """UMT's bottleneck fusion: a few shared tokens read both modalities, then each reads them back."""

    def __init__(self, dims: int, heads: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.att1, self.att2, self.att3, self.att4 = (
            MultiHeadAttention(dims, heads, dropout) for _ in range(4)
        )
        self.ffn1 = FeedForwardNetwork(dims, ratio, dropout)
        self.ffn2 = FeedForwardNetwork(dims, ratio, dropout)
        self.norm1, self.norm2, self.norm3, self.norm4, self.norm5, self.norm6 = (
            nn.LayerNorm(dims) for _ in range(6)
        )

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, pe: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """a, b, pe: (B, N, d) video and audio; t: (B, K, d) bottleneck tokens; mask (B, N)."""
        da, db, dt = self.norm1(a), self.norm2(b), self.norm3(t)
        t = t + self.att1(dt, da + pe, da, mask) + self.att2(dt, db + pe, db, mask)  # (B, K, d)
        dt = self.norm4(t)
        a = a + self.att3(da + pe, dt, dt)  # (B, N, d)
        b = b + self.att4(db + pe, dt, dt)  # (B, N, d)
        a = a + self.ffn1(self.norm5(a))
        b = b + self.ffn2(self.norm6(b))
        return a, b, t


def nncore_table_(table: nn.Parameter) -> None:
    """nncore's `Parameter(*shape)` draw for a learned table: randn / sqrt(last dim) (std 0.0625 at d 256).

    nncore 0.3.6 `nn/bundle/bundle.py` 71-73; UMT builds its position tables and the bottleneck
    tokens this way. `normal_` with that std draws the same distribution on any device.
    """
    nn.init.normal_(table, std=table.shape[-1] ** -0.5)


def xavier_linears(module: nn.Module) -> None:
    """UMT's initialisation: nncore's `xavier_init_` (default distribution 'normal', gain 1), zero biases."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.xavier_normal_(child.weight)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
