"""The balanced fast path: Sinkhorn's two projections where the mass constraint cannot bind.

Dimension letters: B batch (the samples still iterating), N_V video tokens (rows), N_L text tokens.

With mass s = 1 and both marginals of unit mass (readcli's uniform weights always sum to 1), the
constraints T 1 <= a, T^T 1 <= b, 1^T T 1 = 1 force T 1 = a and T^T 1 = b: the partial problem is
the balanced entropic one, and Dykstra's third projection (onto the total mass) and its clipping at
1 only slow the scheme down. Sinkhorn solves it with two scalings per iteration:

    T = diag(u) K diag(v),   u = a / (K v),   v = b / (K^T u).

The stop rule is the partial loops' (readcli.alignment.stopping) specialised to equalities: the L1
distance of the plan's row and column sums from a and b, i.e. how far the next two projections
would move them; it costs no extra product (K v is the next row update, K^T u the last column one).
The plan is detached like the partial one, so the distance's gradient is the envelope gradient.
"""

from __future__ import annotations

import torch

from readcli.alignment.steps import sinkhorn_iterations
from readcli.alignment.stopping import ActiveSet, KernelInput, KernelOutput, marginal_residual

__all__ = ["log_sinkhorn", "plain_sinkhorn"]


@torch.no_grad()
def plain_sinkhorn(spec: KernelInput) -> KernelOutput:
    """Scaling-form Sinkhorn: the plain-domain limit of the partial loop applies unchanged."""
    full_kernel = spec.cost.mul_(-1.0 / spec.tau).exp_()  # (B, N_V, N_L) in place, 1 on padding
    kernel, kernel_t = full_kernel, full_kernel.transpose(1, 2).contiguous()  # (B, N_L, N_V)
    a, b = spec.a[:, None, :], spec.b[:, None, :]  # (B, 1, N_V), (B, 1, N_L) 0 on padding
    u = spec.row_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_V)
    v = spec.col_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_L)
    ktu = torch.ones_like(v)  # (B, 1, N_L) u^T K of the last row scaling; set before it is read
    kv = torch.bmm(v, kernel_t)  # (B, 1, N_V) row sums if u were 1
    active = ActiveSet(spec, (u, v))
    done = 0
    while True:
        if active.due(done):
            residual = marginal_residual(u * kv, a, v * ktu, b)  # (B,)
            finished, (u, v), work = active.check(residual, done, (u, v), (kernel, kernel_t, a, b, kv))
            if finished:
                break
            kernel, kernel_t, a, b, kv = work
        n = active.until_due(done)
        u, ktu, v, kv = sinkhorn_iterations(n, kv, kernel, kernel_t, a, b)
        done += n
    u, v = active.final
    plan = full_kernel.mul_(u.transpose(1, 2)).mul_(v)  # (B, N_V, N_L) in K's memory: K is done
    return active.result(plan)


@torch.no_grad()
def log_sinkhorn(spec: KernelInput) -> KernelOutput:
    """The same on f = log u, g = log v with log-sum-exps: no under- or overflow at any tau."""
    valid = spec.row_mask[:, :, None] & spec.col_mask[:, None, :]  # (B, N_V, N_L)
    neg_inf = torch.tensor(float("-inf"), dtype=spec.cost.dtype, device=spec.cost.device)
    full_log_k = torch.where(valid, spec.cost / -spec.tau, neg_inf)  # (B, N_V, N_L)
    log_k, row_mask, col_mask = full_log_k, spec.row_mask, spec.col_mask
    log_a = torch.where(row_mask, spec.a.log(), neg_inf)  # (B, N_V)
    log_b = torch.where(col_mask, spec.b.log(), neg_inf)  # (B, N_L)
    f = torch.where(row_mask, 0.0, neg_inf)  # (B, N_V)
    g = torch.where(col_mask, 0.0, neg_inf)  # (B, N_L)
    col = torch.zeros_like(g)  # (B, N_L) log K^T u of the last row scaling; set before it is read
    active = ActiveSet(spec, (f, g))
    done = 0
    while True:
        row = (log_k + g[:, None, :]).logsumexp(-1)  # (B, N_V) log row sums if u were 1
        if active.due(done):
            residual = marginal_residual(
                torch.exp(f + row)[:, None], _weights(log_a), torch.exp(g + col)[:, None], _weights(log_b)
            )  # (B,)
            finished, (f, g), work = active.check(
                residual, done, (f, g), (log_k, row_mask, col_mask, log_a, log_b, row)
            )
            if finished:
                break
            log_k, row_mask, col_mask, log_a, log_b, row = work
        f = torch.where(row_mask, log_a - row, neg_inf)  # (B, N_V)
        col = (log_k + f[:, :, None]).logsumexp(1)  # (B, N_L)
        g = torch.where(col_mask, log_b - col, neg_inf)  # (B, N_L)
        done += 1
    f, g = active.final
    plan = torch.exp(f[:, :, None] + full_log_k + g[:, None, :])  # (B, N_V, N_L)
    return active.result(plan)


def _weights(log_weights: torch.Tensor) -> torch.Tensor:
    """(B, N) log weights, -inf on padding -> (B, 1, N) weights, 0 on padding."""
    return torch.exp(log_weights)[:, None]
