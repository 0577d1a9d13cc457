"""Moment-DETR's small building blocks: input projections, the head MLP and the position encodings.

Module and parameter names follow the official state-dict layout (`LayerNorm`, `net.1`, `layers.i`,
`position_embeddings`), so an official checkpoint loads without renaming.

Dimension letters: B batch, T sequence length, D input width, d hidden width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LinearLayer(nn.Module):
    """LayerNorm -> dropout -> Linear (-> ReLU): one step of the official input projection."""

    def __init__(self, in_dim: int, out_dim: int, *, dropout: float, relu: bool) -> None:
        super().__init__()
        self.relu = relu
        self.LayerNorm = nn.LayerNorm(in_dim)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(self.LayerNorm(x))  # (B, T, d)
        return F.relu(x) if self.relu else x


def input_projection(in_dim: int, hidden_dim: int, *, n_layers: int, dropout: float) -> nn.Sequential:
    """The official `input_{vid,txt}_proj`: `n_layers` LinearLayers, ReLU on all but the last."""
    dims = [in_dim] + [hidden_dim] * n_layers
    return nn.Sequential(
        *(LinearLayer(dims[i], dims[i + 1], dropout=dropout, relu=i < n_layers - 1) for i in range(n_layers))
    )


class MLP(nn.Module):
    """Linear layers with ReLU between them (the span head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else F.relu(layer(x))
        return x


class PositionEmbeddingSine(nn.Module):
    """1-d sine encoding of the valid positions, normalised to [0, 2π] by each row's valid length.

    Matches the official `PositionEmbeddingSine(hidden_dim, normalize=True)`: the position of a clip is
    its rank among valid clips (mask cumsum) divided by the number of valid clips; channels interleave
    sin (even) and cos (odd) at frequencies 10000^(2⌊i/2⌋/d).
    """

    def __init__(self, dim: int, *, temperature: float = 10000.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.temperature = temperature
        self.eps = eps
        self.scale = 2 * math.pi

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask: (B, T), nonzero = valid -> (B, T, d) float32."""
        x_embed = mask.cumsum(1, dtype=torch.float32)  # (B, T)
        x_embed = x_embed / (x_embed[:, -1:] + self.eps) * self.scale  # (B, T)
        dim_t = torch.arange(self.dim, dtype=torch.float32, device=mask.device)  # (d,)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.dim)  # (d,)
        pos = x_embed[:, :, None] / dim_t  # (B, T, d)
        return torch.stack((pos[:, :, 0::2].sin(), pos[:, :, 1::2].cos()), dim=3).flatten(2)  # (B, T, d)


class TrainablePositionalEncoding(nn.Module):
    """The official text position module: LayerNorm(x + table[position]) then dropout.

    Note it returns the features plus positions, not positions alone; the official model adds that
    sum to the text as its "position" when `use_txt_pos` is set. Unused (but present in every
    checkpoint) when `use_txt_pos` is false, as in the public CLIP-only model.
    """

    def __init__(self, max_positions: int, hidden_dim: int, *, dropout: float) -> None:
        super().__init__()
        self.position_embeddings = nn.Embedding(max_positions, hidden_dim)
        self.LayerNorm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d) -> (B, T, d)."""
        positions = torch.arange(x.shape[1], device=x.device)  # (T,)
        return self.dropout(self.LayerNorm(x + self.position_embeddings(positions)[None]))  # (B, T, d)
