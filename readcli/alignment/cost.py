"""The PVLA transport cost between video and text token states: 1 - cosine similarity.

Dimension letters: B batch, N_V video tokens, N_L text tokens, d width.

The backward is written out (a custom autograd function): it is the same gradient autograd would
give through `F.normalize` and `bmm`, with fewer passes over (B, N, d) (measured: a third cheaper),
which matters because PVLA's backward is mostly this (the plan needs no backward; docs/pvla.md).
"""

from __future__ import annotations

from typing import Any

import torch

from readcli.errors import InvalidValueError


def cosine_cost(video: torch.Tensor, text: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """(B, N_V, d), (B, N_L, d) -> (B, N_V, N_L) cost 1 - cos in [0, 2], computed in float32 or wider.

    Runs outside autocast: half precision loses the small cost differences that exp(-C / tau)
    amplifies. A zero vector (e.g. padding) has cosine 0 with everything, so cost 1, never NaN.
    """
    shapes_ok = video.dim() == 3 and text.dim() == 3
    if not shapes_ok or video.shape[0] != text.shape[0] or video.shape[2] != text.shape[2]:
        raise InvalidValueError(
            f"video states {tuple(video.shape)} and text states {tuple(text.shape)} do not match: "
            "expected (B, N_V, d) and (B, N_L, d) with the same B and d"
        )
    cost: torch.Tensor = _CosineCost.apply(video, text, eps)
    return cost


def _normalize(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, N, d) -> (x / max(|x|, eps), max(|x|, eps) (B, N, 1)), as F.normalize computes it."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(eps)  # (B, N, 1)
    return x / norm, norm


def _normalize_backward(
    unit: torch.Tensor, norm: torch.Tensor, minus_grad: torch.Tensor, eps: float
) -> torch.Tensor:
    """Gradient through x -> x / max(|x|, eps), given minus the gradient at the output (B, N, d).

    (g - unit <unit, g>) / |x|, the radial part dropped only where |x| > eps (clamped norms have no
    radial gradient); written as two passes over (B, N, d).
    """
    radial = torch.linalg.vecdot(unit, minus_grad).unsqueeze(-1) * (norm > eps)  # (B, N, 1)
    inverse = norm.reciprocal()  # (B, N, 1)
    return (minus_grad * -inverse).addcmul_(unit, radial * inverse)  # (B, N, d)


class _CosineCost(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, video: torch.Tensor, text: torch.Tensor, eps: float) -> torch.Tensor:
        dtype = torch.float64 if torch.float64 in (video.dtype, text.dtype) else torch.float32
        with torch.autocast(device_type=video.device.type, enabled=False):
            v, v_norm = _normalize(video.to(dtype), eps)  # (B, N_V, d), (B, N_V, 1)
            t, t_norm = _normalize(text.to(dtype), eps)  # (B, N_L, d), (B, N_L, 1)
            one = torch.ones((1, 1, 1), dtype=dtype, device=video.device)
            cost = torch.baddbmm(one, v, t.transpose(1, 2), alpha=-1.0)  # (B, N_V, N_L) 1 - cos
        ctx.save_for_backward(v, v_norm, t, t_norm)
        ctx.eps = eps
        ctx.dtypes = (video.dtype, text.dtype)
        return cost

    @staticmethod
    def backward(ctx: Any, grad_cost: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        v, v_norm, t, t_norm = ctx.saved_tensors
        grad_cost = grad_cost.to(v.dtype)  # (B, N_V, N_L)
        grad_video = grad_text = None
        with torch.autocast(device_type=v.device.type, enabled=False):
            # d cost / d v = -grad_cost t: the minus is folded into _normalize_backward
            if ctx.needs_input_grad[0]:
                minus_v = torch.bmm(grad_cost, t)  # (B, N_V, d)
                grad_video = _normalize_backward(v, v_norm, minus_v, ctx.eps).to(ctx.dtypes[0])
            if ctx.needs_input_grad[1]:
                minus_t = torch.bmm(grad_cost.transpose(1, 2), v)  # (B, N_L, d)
                grad_text = _normalize_backward(t, t_norm, minus_t, ctx.eps).to(ctx.dtypes[1])
        return grad_video, grad_text, None
