"""Temporal span arithmetic: (center, width) <-> (start, end), IoU and generalised IoU, batched.

Dimension letters: N and M numbers of spans, ... any leading batch dimensions.

The arithmetic is that of Moment-DETR's `span_utils.py` (itself DETR's box ops in one dimension), so
losses and matching costs agree with the official code to the last bit in float32. Half-precision
inputs are promoted to float32 first, as the official code does for every input; float64 stays float64.
Spans must satisfy end >= start; callers validate user-provided spans (see grounding_loss.py).
"""

from __future__ import annotations

import torch

__all__ = [
    "generalized_temporal_iou",
    "paired_generalized_temporal_iou",
    "span_cxw_to_xx",
    "span_xx_to_cxw",
    "temporal_iou",
]


def _promote(spans: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32: IoU ratios of short spans lose too much in half precision."""
    return spans.float() if spans.dtype in (torch.float16, torch.bfloat16) else spans


def span_cxw_to_xx(cxw_spans: torch.Tensor) -> torch.Tensor:
    """(center, width) -> (start, end), over the last dimension."""
    center, width = cxw_spans[..., 0], cxw_spans[..., 1]  # (...,)
    return torch.stack([center - 0.5 * width, center + 0.5 * width], dim=-1)  # (..., 2)


def span_xx_to_cxw(xx_spans: torch.Tensor) -> torch.Tensor:
    """(start, end) -> (center, width), over the last dimension."""
    center = xx_spans.sum(-1) * 0.5  # (...,)
    width = xx_spans[..., 1] - xx_spans[..., 0]  # (...,)
    return torch.stack([center, width], dim=-1)  # (..., 2)


def temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of every pair: (..., N, 2) x (..., M, 2) in (start, end) -> two (..., N, M)."""
    spans1, spans2 = _promote(spans1), _promote(spans2)
    areas1 = spans1[..., 1] - spans1[..., 0]  # (..., N)
    areas2 = spans2[..., 1] - spans2[..., 0]  # (..., M)
    left = torch.maximum(spans1[..., :, None, 0], spans2[..., None, :, 0])  # (..., N, M)
    right = torch.minimum(spans1[..., :, None, 1], spans2[..., None, :, 1])  # (..., N, M)
    inter = (right - left).clamp(min=0)  # (..., N, M)
    union = areas1[..., :, None] + areas2[..., None, :] - inter  # (..., N, M)
    return inter / union, union


def generalized_temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of every pair (Rezatofighi et al. 2019): (..., N, 2) x (..., M, 2) -> (..., N, M).

    gIoU = IoU - (hull - union) / hull, in [-1, 1]; 1 for identical spans, below 0 for disjoint ones.
    """
    spans1, spans2 = _promote(spans1), _promote(spans2)
    iou, union = temporal_iou(spans1, spans2)  # (..., N, M)
    left = torch.minimum(spans1[..., :, None, 0], spans2[..., None, :, 0])  # (..., N, M)
    right = torch.maximum(spans1[..., :, None, 1], spans2[..., None, :, 1])  # (..., N, M)
    hull = (right - left).clamp(min=0)  # (..., N, M) the smallest span holding both
    return iou - (hull - union) / hull


def paired_generalized_temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """gIoU of matching rows: (..., 2) x (..., 2) -> (...); the diagonal of the pairwise matrix.

    Same operations in the same order as `generalized_temporal_iou`, so the values are identical to the
    official `torch.diag(generalized_temporal_iou(a, b))` without building the N x N matrix.
    """
    spans1, spans2 = _promote(spans1), _promote(spans2)
    areas1 = spans1[..., 1] - spans1[..., 0]  # (...,)
    areas2 = spans2[..., 1] - spans2[..., 0]  # (...,)
    inter = (
        torch.minimum(spans1[..., 1], spans2[..., 1]) - torch.maximum(spans1[..., 0], spans2[..., 0])
    ).clamp(min=0)  # (...,)
    union = areas1 + areas2 - inter  # (...,)
    hull = (
        torch.maximum(spans1[..., 1], spans2[..., 1]) - torch.minimum(spans1[..., 0], spans2[..., 0])
    ).clamp(min=0)  # (...,)
    return inter / union - (hull - union) / hull
