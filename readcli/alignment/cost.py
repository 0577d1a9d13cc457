"""The PVLA transport cost between video and text token states: 1 - cosine similarity.

Dimension letters: B batch, N_V video tokens, N_L text tokens, d width.

The backward is written out (a custom autograd function): it is the same gradient autograd would
give through `F.normalize` and `bmm`, but it works on the small (B, N_V, N_L) matrices wherever it can
and touches (B, N, d) once per side, which matters because PVLA's backward is mostly this (the plan
needs no backward; docs/pvla.md).
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


def _inverse_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x (B, N, d) -> 1 / max(|x|, eps) (B, N), the scale F.normalize applies."""
    return torch.linalg.vector_norm(x, dim=-1).clamp_min_(eps).reciprocal_()  # (B, N)


class _CosineCost(torch.autograd.Function):
    """1 - cos from raw states: cos = (v t^T) * (1/|v|) (1/|t|)^T, no normalised copies of v and t.

    Backward, with G = dL/dC and cos the cosine matrix (both (B, N_V, N_L), small next to (B, N, d)):
        dL/dv_i = -(sum_j G_ij t_j / |t_j|) / |v_i|  +  v_i * (sum_j G_ij cos_ij) / |v_i|^2
    (the second, radial term only where |v_i| > eps: clamped norms have no radial gradient), i.e.
    one bmm and one fused multiply-add per side over (B, N, d), plus a few (B, N_V, N_L) products.
    """

    @staticmethod
    def forward(ctx: Any, video: torch.Tensor, text: torch.Tensor, eps: float) -> torch.Tensor:
        dtype = torch.float64 if torch.float64 in (video.dtype, text.dtype) else torch.float32
        with torch.autocast(device_type=video.device.type, enabled=False):
            v, t = video.to(dtype), text.to(dtype)  # (B, N_V, d), (B, N_L, d)
            inv_v, inv_t = _inverse_norm(v, eps), _inverse_norm(t, eps)  # (B, N_V), (B, N_L)
            cos = torch.bmm(v, t.transpose(1, 2))  # (B, N_V, N_L) raw dot products
            cos.mul_(inv_v.unsqueeze(2)).mul_(inv_t.unsqueeze(1))  # (B, N_V, N_L) cosines
            cost = torch.sub(1.0, cos)  # (B, N_V, N_L)
        ctx.save_for_backward(v, t, inv_v, inv_t, cos)
        ctx.eps = eps
        ctx.dtypes = (video.dtype, text.dtype)
        return cost

    @staticmethod
    def backward(ctx: Any, grad_cost: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        v, t, inv_v, inv_t, cos = ctx.saved_tensors
        eps = ctx.eps
        grad = grad_cost.to(v.dtype)  # (B, N_V, N_L)
        grad_video = grad_text = None
        with torch.autocast(device_type=v.device.type, enabled=False):
            # minus G / (|v_i| |t_j|): the sign folded into the small matrix, not into (B, N, d)
            scaled = grad * inv_v.unsqueeze(2) * inv_t.unsqueeze(1).neg()  # (B, N_V, N_L)
            weighted = grad * cos  # (B, N_V, N_L) G_ij cos_ij
            if ctx.needs_input_grad[0]:
                radial = weighted.sum(2) * inv_v.square() * (inv_v < 1.0 / eps)  # (B, N_V)
                grad_video = torch.bmm(scaled, t).addcmul_(v, radial.unsqueeze(2))  # (B, N_V, d)
                grad_video = grad_video.to(ctx.dtypes[0])
            if ctx.needs_input_grad[1]:
                radial = weighted.sum(1) * inv_t.square() * (inv_t < 1.0 / eps)  # (B, N_L)
                grad_text = torch.bmm(scaled.transpose(1, 2), v).addcmul_(
                    t, radial.unsqueeze(2)
                )  # (B, N_L, d)
                grad_text = grad_text.to(ctx.dtypes[1])
        return grad_video, grad_text, None
