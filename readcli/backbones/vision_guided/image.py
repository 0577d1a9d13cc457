"""The image transformer VG-GPLMs runs over the video before the fusion (`use_img_trans`, "VTF").

Dimension letters: B batch, T video rows, D video feature width (= the transformer's width).

As official (src/models/img_transformer.py, written here from its description): the rows are scaled
by sqrt(D), a sinusoidal position table is added, dropout 0.1, then 4 stock post-norm
`nn.TransformerEncoderLayer`s (8 heads, feed-forward 2048, ReLU, dropout 0.1) with the padded rows
masked as keys. The outputs of the padded rows are not zeroed: they feed the fusion (official).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from readcli.backbones.vision_guided.config import (
    IMAGE_TRANSFORMER_DROPOUT,
    IMAGE_TRANSFORMER_FFN,
    IMAGE_TRANSFORMER_HEADS,
    IMAGE_TRANSFORMER_LAYERS,
)
from readcli.errors import InvalidValueError

MAX_ROWS = 5000  # the official table's length


def sinusoidal_table(rows: int, width: int) -> torch.Tensor:
    """(rows, width) float32: sin on even channels, cos on odd, wavelengths 2π .. 10000·2π."""
    table = torch.zeros(rows, width, dtype=torch.float32)
    position = torch.arange(0, rows, dtype=torch.float).unsqueeze(1)  # (rows, 1)
    frequency = torch.exp(torch.arange(0, width, 2).float() * (-math.log(10000.0) / width))  # (width/2,)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class ImageTransformer(nn.Module):
    """(B, T, D) video rows -> (B, T, D) contextualised rows; `position_table` is not saved (a formula)."""

    def __init__(
        self, width: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.width = width
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width,
                IMAGE_TRANSFORMER_HEADS,
                IMAGE_TRANSFORMER_FFN,
                IMAGE_TRANSFORMER_DROPOUT,
                device=device,
                dtype=dtype,
            )  # fmt: skip
            for _ in range(IMAGE_TRANSFORMER_LAYERS)
        )
        self.dropout = nn.Dropout(IMAGE_TRANSFORMER_DROPOUT)
        table = sinusoidal_table(MAX_ROWS, width) if str(device) != "meta" else torch.empty(MAX_ROWS, width)
        self.position_table: torch.Tensor
        self.register_buffer("position_table", table.to(device=device, dtype=dtype), persistent=False)

    def forward(self, video: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """video (B, T, D); valid (B, T) bool, True = a real row (the official mask from image_len)."""
        rows = video.shape[1]
        if rows > self.position_table.shape[0]:
            raise InvalidValueError(
                f"{rows} video rows exceed the image transformer's {self.position_table.shape[0]} positions"
            )
        x = video.transpose(0, 1) * math.sqrt(self.width)  # (T, B, D): sequence first, as official
        x = self.dropout(x + self.position_table[:rows, None, :])  # (T, B, D)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~valid)  # (T, B, D)
        return x.transpose(0, 1)  # (B, T, D)
