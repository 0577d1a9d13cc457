"""UMT's five stages and its heads, named as the official modules (TencentARC/UMT `models/blocks`).

`UniModalEncoder` (video, audio), `CrossModalEncoder` (bottleneck fusion, sum), `QueryGenerator`
(clip queries from the text), `QueryDecoder`, `SaliencyHead` and `BoundaryHead`. Official names are
kept for the state-dict layout: `mapping`, `pos_enc.pe`, `encoder`, `token`, `q_pos_enc`, `decoder.i`,
`saliency_pred.linear`, `center_pred.linear`, ... (docs/umt.md lists them).

Dimension letters: B batch, N_V clips, N_L text tokens, K bottleneck tokens, d width, D input width.
"""

from __future__ import annotations

import torch
from torch import nn

from readcli.backbones.umt.layers import (
    BottleneckLayer,
    DecoderLayer,
    EncoderLayer,
    LinearModule,
    MultiHeadAttention,
    PositionalEncoding,
    nncore_table_,
)


class UniModalEncoder(nn.Module):
    """Dropout on the raw features, a linear map to d, learnable positions, one encoder layer."""

    def __init__(
        self,
        in_dim: int,
        dims: int,
        *,
        heads: int,
        ratio: int,
        dropout: float,
        input_dropout: float,
        max_len: int,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(input_dropout)
        self.mapping = LinearModule(in_dim, dims)
        self.pos_enc = PositionalEncoding(dims, max_len, dropout)
        self.encoder = EncoderLayer(dims, heads, ratio, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N_V, D), mask (B, N_V) -> (B, N_V, d)."""
        x = self.mapping(self.dropout(x))  # (B, N_V, d)
        return self.encoder(x, self.pos_enc(x), mask)  # (B, N_V, d)


class BottleneckTransformer(nn.Module):
    """K learnable tokens shared by the video and audio streams, through `layers` bottleneck layers."""

    def __init__(
        self, dims: int, *, tokens: int, layers: int, heads: int, ratio: int, dropout: float
    ) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.empty(tokens, dims))
        nncore_table_(self.token)  # (K, d), std 1/sqrt(d) as officially
        self.encoder = nn.ModuleList(BottleneckLayer(dims, heads, ratio, dropout) for _ in range(layers))

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, pe: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.token.expand(a.shape[0], -1, -1)  # (B, K, d)
        for layer in self.encoder:
            a, b, t = layer(a, b, t, pe, mask)
        return a, b  # (B, N_V, d) each


class CrossModalEncoder(nn.Module):
    """Bottleneck fusion of video and audio, summed and normalised (the official fusion_type 'sum')."""

    def __init__(self, dims: int, *, tokens: int, layers: int, heads: int, ratio: int, dropout: float,
                 max_len: int) -> None:  # fmt: skip
        super().__init__()
        self.pos_enc = PositionalEncoding(dims, max_len, dropout)
        self.encoder = BottleneckTransformer(
            dims, tokens=tokens, layers=layers, heads=heads, ratio=ratio, dropout=dropout
        )
        self.norm = nn.LayerNorm(dims)

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a, b = self.encoder(a, b, self.pos_enc(a), mask)
        return self.norm(a + b)  # (B, N_V, d)


class QueryGenerator(nn.Module):
    """One query per clip: the clip representation attends to the (mapped) text tokens.

    As officially, the attention output *replaces* the clip representation (no residual).
    """

    def __init__(self, text_dim: int, dims: int, *, heads: int, dropout: float, query_dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(query_dropout)
        self.mapping = LinearModule(text_dim, dims, norm=True)  # official last_norm=True, LN
        self.encoder = MultiHeadAttention(dims, heads, dropout)

    def text_tokens(self, text: torch.Tensor) -> torch.Tensor:
        """(B, N_L, D_L) -> (B, N_L, d): the text as the model sees it (PVLA aligns these)."""
        return self.mapping(self.dropout(text))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N_V, d) clips; tokens (B, N_L, d) from `text_tokens`; text_mask (B, N_L) -> (B, N_V, d)."""
        return self.encoder(x, tokens, tokens, text_mask)


class QueryDecoder(nn.Module):
    """Decoder layers over the clip queries, reading the clip memory; every layer's output normalised."""

    def __init__(
        self, dims: int, *, layers: int, heads: int, ratio: int, dropout: float, max_len: int
    ) -> None:
        super().__init__()
        self.q_pos_enc = PositionalEncoding(dims, max_len, dropout)
        self.k_pos_enc = PositionalEncoding(dims, max_len, dropout)
        self.decoder = nn.ModuleList(DecoderLayer(dims, heads, ratio, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dims)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """x (queries), mem: (B, N_V, d); mask (B, N_V) -> one (B, N_V, d) per layer."""
        q_pe, k_pe = self.q_pos_enc(x), self.k_pos_enc(x)  # both from the queries, as officially
        outputs = []
        for layer in self.decoder:
            x = layer(x, mem, q_pe, k_pe, mask)  # (B, N_V, d)
            outputs.append(self.norm(x))
        return outputs


class SaliencyHead(nn.Module):
    """One saliency logit per clip (the official head applies a sigmoid only for its own outputs)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.saliency_pred = LinearModule(dims, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.saliency_pred(x).squeeze(-1)  # (B, N_V)


class BoundaryHead(nn.Module):
    """Per clip: a moment-center logit, a window length and a center offset, in clips."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.center_pred = LinearModule(dims, 1)
        self.window_pred = LinearModule(dims, 1)
        self.offset_pred = LinearModule(dims, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, N_V, d) -> center logits, windows, offsets, each (B, N_V)."""
        return (
            self.center_pred(x).squeeze(-1),
            self.window_pred(x).squeeze(-1),
            self.offset_pred(x).squeeze(-1),
        )
