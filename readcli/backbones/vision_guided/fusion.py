"""The vision-guided fusion head of VG-GPLMs (Yu et al., EMNLP 2021): both official variants.

Dimension letters: B batch, S text tokens, T video rows, D video feature width, d model width.
F = the video rows, after the image transformer when `use_img_trans` (B, T, D).

cross_attn_type 0 (dot-product; the shipped setting):
    K = F · W_k + b_k                                   (B, T, d)   `video_key` (official `_linear_1`)
    P = softmax_S(H · Kᵀ)                               (B, S, T)   softmax over the TEXT axis, as official
    A = P · F                                           (B, S, D)   attended raw video rows
    A = sigmoid([A; H] · W_g + b_g) ⊙ A                 (B, S, D)   forget gate `gate` (official `fg`)
    O = [H; A] · W_o + b_o                              (B, S, d)   `output` (official `_linear_2`)
cross_attn_type 5 (multi-head):
    O = MultiHeadAttention(H·W_q, F·W_k, F·W_v)         (B, S, d)   `text_query`/`video_key`/`video_value`
                                                                    (official `_linear_3/_1/_2`)
    O = sigmoid([O; H] · W_g + b_g) ⊙ O                 (B, S, d)   forget gate
both:
    H' = LayerNorm(H + dropout(O))                      (B, S, d)   post-fusion norm `norm`

As official, no padding mask is applied (padded video rows are attended; type 0's softmax runs over
padded text tokens too) unless readcli's `mask_padding` is set. docs/summarization.md, "Fusion".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from readcli.backbones.vision_guided.config import VisionGuidedConfig
from readcli.backbones.vision_guided.image import ImageTransformer
from readcli.errors import InvalidValueError


class VisionTextFusion(nn.Module):
    """Fuses video rows into text states (official VG-GPLMs variants 0 and 5, see the module doc)."""

    def __init__(
        self,
        config: VisionGuidedConfig,
        d_model: int,
        heads: int,
        dropout: float,
        *,
        linear_std: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kinds: dict[str, Any] = {"device": device, "dtype": dtype}
        video_dim = config.video_dim
        self.video_dim, self.d_model, self.heads, self.dropout = video_dim, d_model, heads, dropout
        self.kind, self.mask_padding = config.cross_attn_type, config.mask_padding
        self.image_transformer: ImageTransformer | None = (
            ImageTransformer(video_dim, **kinds) if config.use_img_trans else None
        )
        self.video_key = nn.Linear(video_dim, d_model, **kinds)
        if self.kind == 0:
            self.gate = nn.Linear(video_dim + d_model, video_dim, **kinds) if config.use_forget_gate else None
            self.output = nn.Linear(d_model + video_dim, d_model, **kinds)
            final: nn.Linear = self.output
        else:
            if d_model % heads:
                raise InvalidValueError(f"fusion heads {heads} do not divide the model width {d_model}")
            self.video_value = nn.Linear(video_dim, d_model, **kinds)
            self.text_query = nn.Linear(d_model, d_model, **kinds)
            self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True, **kinds)
            self.gate = nn.Linear(2 * d_model, d_model, **kinds) if config.use_forget_gate else None
            final = self.attention.out_proj
        self.norm = nn.LayerNorm(d_model, **kinds) if config.post_norm else None
        if linear_std is not None:  # official VG-BART: BART's _init_weights reaches every nn.Linear
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=linear_std)
                    nn.init.zeros_(module.bias)
        if config.zero_init_output:  # readcli's option: O = 0 at the start
            nn.init.zeros_(final.weight)
            nn.init.zeros_(final.bias)

    def prepare(
        self, video: torch.Tensor, valid: torch.Tensor, *, run_image_transformer: bool
    ) -> torch.Tensor:
        """(B, T, D) video features -> the rows F the fusion reads (image transformer if asked)."""
        if video.shape[-1] != self.video_dim:
            raise InvalidValueError(
                f"video features of width {video.shape[-1]}, "
                f"but the video projection expects {self.video_dim}"
            )
        if run_image_transformer and self.image_transformer is not None:
            return self.image_transformer(video, valid)  # (B, T, D)
        return video

    def project(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, T, D) rows F -> (B, T, d) video tokens in the text space (the keys; PVLA's video side)."""
        return self.video_key(rows)  # (B, T, d)

    def forward(
        self,
        text: torch.Tensor,
        rows: torch.Tensor,
        video_valid: torch.Tensor,
        text_valid: torch.Tensor,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused text states (B, S, d) from text (B, S, d), rows F (B, T, D), masks (bool, True = real).

        keys: `project(rows)` when the caller has it already (B, T, d).
        """
        keys = self.project(rows) if keys is None else keys  # (B, T, d)
        if self.kind == 0:
            out = self._dot_product(text, rows, keys, video_valid, text_valid)  # (B, S, d)
        else:
            out = self._multi_head(text, rows, keys, video_valid)  # (B, S, d)
        fused = text + F.dropout(out, p=self.dropout, training=self.training)  # (B, S, d)
        return self.norm(fused) if self.norm is not None else fused

    def _forget(self, attended: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        assert self.gate is not None
        gate = torch.sigmoid(self.gate(torch.cat((attended, text), 2)))  # (B, S, D or d)
        return F.dropout(gate, p=self.dropout, training=self.training) * attended

    def _dot_product(
        self, text: torch.Tensor, rows: torch.Tensor, keys: torch.Tensor, video_valid: torch.Tensor,
        text_valid: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        scores = torch.bmm(text, keys.transpose(1, 2))  # (B, S, T)
        if self.mask_padding:  # readcli: padded text tokens get no weight in the softmax over S
            scores = scores.masked_fill(~text_valid[:, :, None], float("-inf"))
        weights = F.softmax(scores, dim=1)  # (B, S, T): each video row distributes over the text
        if self.mask_padding:  # readcli: padded video rows contribute nothing
            weights = weights * video_valid[:, None, :].to(weights.dtype)
        attended = torch.bmm(weights, rows)  # (B, S, D)
        if self.gate is not None:
            attended = self._forget(attended, text)  # (B, S, D)
        return self.output(torch.cat((text, attended), 2))  # (B, S, d)

    def _multi_head(
        self, text: torch.Tensor, rows: torch.Tensor, keys: torch.Tensor, video_valid: torch.Tensor
    ) -> torch.Tensor:
        values = self.video_value(rows)  # (B, T, d)
        queries = self.text_query(text)  # (B, S, d)
        padding = ~video_valid if self.mask_padding else None
        attended = self.attention(queries, keys, values, key_padding_mask=padding, need_weights=False)[0]
        if self.gate is not None:
            attended = self._forget(attended, text)  # (B, S, d)
        return attended  # (B, S, d)
