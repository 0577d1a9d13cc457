"""Unrolled, per-sample partial OT in plain autograd: the reference the tests and benchmark use.

Dimension letters: N_V video tokens (rows), N_L text tokens (columns).

This is POT's `entropic_partial_wasserstein` loop written in torch, one sample at a time, with every
iteration recorded by autograd: slow, and its backward memory grows with the iteration count. It is
here to check `partial_ot` against, not to train with. `corrections=False` gives the paper's
Algorithm 1 (no Dykstra corrections), which converges to a different plan (docs/pvla.md).
"""

from __future__ import annotations

import torch


def unrolled_partial_ot(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    mass: float,
    tau: float,
    n_iter: int,
    corrections: bool = True,
) -> torch.Tensor:
    """(N_V, N_L) cost, (N_V,) a, (N_L,) b -> (N_V, N_L) plan after exactly n_iter iterations."""
    kernel = torch.exp(-cost / tau)  # (N_V, N_L)
    plan = kernel * (mass / kernel.sum())  # (N_V, N_L)
    ones_a, ones_b = torch.ones_like(a), torch.ones_like(b)
    q1 = q2 = q3 = torch.ones_like(plan)  # (N_V, N_L) Dykstra corrections
    for _ in range(n_iter):
        previous = plan
        plan = plan * q1 if corrections else plan
        rows = torch.minimum(a / plan.sum(1), ones_a)[:, None] * plan  # (N_V, N_L)
        if corrections:
            q1 = q1 * previous / rows
        previous = rows
        rows = rows * q2 if corrections else rows
        cols = rows * torch.minimum(b / rows.sum(0), ones_b)[None, :]  # (N_V, N_L)
        if corrections:
            q2 = q2 * previous / cols
        previous = cols
        cols = cols * q3 if corrections else cols
        plan = cols * (mass / cols.sum())  # (N_V, N_L)
        if corrections:
            q3 = q3 * previous / plan
    return plan


def regularized_value(plan: torch.Tensor, cost: torch.Tensor, tau: float) -> torch.Tensor:
    """<T, C> + tau * sum T log T: the objective whose gradient in C the envelope theorem gives."""
    entropy = torch.where(plan > 0, plan * plan.clamp_min(torch.finfo(plan.dtype).tiny).log(), 0.0)
    return (plan * cost).sum() + tau * entropy.sum()
