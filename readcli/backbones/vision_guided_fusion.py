"""The vision-guided fusion head: video projection, text->video attention and a learned gate.

Dimension letters: B batch, N_V video tokens, N_L text tokens, D_V video feature width, d model width.

    V = video · W_v + b_v                                   (B, N_V, d)  projected video tokens
    A = MultiHeadAttention(query = H_L, key = value = V)    (B, N_L, d)  softmax over video tokens
    G = sigmoid([H_L; A] · W_g + b_g)                       (B, N_L, d)
    H_L' = H_L + G ⊙ A

The attention's output projection starts at zero, so a new head leaves the text model's states
unchanged (A = 0) and fine-tuning starts from the pretrained summariser; the output projection
gets a gradient at the first step and the rest follows (docs/summarization.md, "Fusion").
"""

from __future__ import annotations

import torch
from torch import nn

from readcli.errors import InvalidValueError


class VisionTextFusion(nn.Module):
    """Projects video features to the model width and fuses them into text states through a gate."""

    def __init__(
        self,
        video_dim: int,
        d_model: int,
        heads: int,
        dropout: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise InvalidValueError(f"fusion heads {heads} do not divide the model width {d_model}")
        self.video_dim = video_dim
        self.video_proj = nn.Linear(video_dim, d_model, device=device, dtype=dtype)
        self.attention = nn.MultiheadAttention(
            d_model, heads, dropout=dropout, batch_first=True, device=device, dtype=dtype
        )
        self.gate = nn.Linear(2 * d_model, d_model, device=device, dtype=dtype)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def project(self, video: torch.Tensor) -> torch.Tensor:
        """(B, N_V, D_V) features -> (B, N_V, d) video tokens."""
        if video.shape[-1] != self.video_dim:
            raise InvalidValueError(
                f"video features of width {video.shape[-1]}, "
                f"but the video projection expects {self.video_dim}"
            )
        return self.video_proj(video)  # (B, N_V, d)

    def forward(
        self, text: torch.Tensor, video_tokens: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """Fused text states (B, N_L, d); video_mask (B, N_V) bool, True = valid (>= 1 per row)."""
        attended = self.attention(
            text, video_tokens, video_tokens, key_padding_mask=~video_mask, need_weights=False
        )[0]  # (B, N_L, d)
        gate = torch.sigmoid(self.gate(torch.cat([text, attended], dim=-1)))  # (B, N_L, d)
        return text + gate * attended  # (B, N_L, d)
