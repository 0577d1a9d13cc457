"""The partial-OT inner loops: Dykstra's three projections, plain-domain scaling and log-domain.

Dimension letters: B batch (the samples still iterating), N_V video tokens (rows), N_L text tokens.

Both run the Dykstra scheme of POT's `entropic_partial_wasserstein` in its scaling form
(docs/pvla.md): T = sigma * diag(u) K diag(v) with K = exp(-C / tau) and

    u = min(a / (sigma K v), 1),   v = min(b / (sigma K^T u), 1),   sigma = m / (u^T K v).

The Dykstra corrections of the three KL projections are exactly these scalings (each correction
undoes the previous projection of the same set), so the loops below give POT's answer. They run
under `torch.no_grad()` (the caller's envelope loss differentiates through the cost only) and stop
a sample once the next projections would move its plan's marginals by at most `tol` in total (L1,
mass units): the optimality residual sum_i |r_i - min(a_i, sigma (K v)_i)| + the same over columns,
with r, c the plan's row and column sums (readcli.alignment.stopping). The residual costs no extra
product: sigma K v is the next iteration's row update, and sigma K^T u the last column update's.
(The change of the marginals between checks is not a safe test: the scheme has plateaus where a
full iteration barely moves them while the plan is still 1e-3 away.)
"""

from __future__ import annotations

import torch

from readcli.alignment.steps import dykstra_iterations
from readcli.alignment.stopping import ActiveSet, KernelInput, KernelOutput, marginal_residual

__all__ = ["KernelInput", "KernelOutput", "log_dykstra", "plain_dykstra"]


@torch.no_grad()
def plain_dykstra(spec: KernelInput) -> KernelOutput:
    """Scaling-form Dykstra in float: fast; safe while (max C - min C) / tau stays moderate.

    sigma is carried inside the column scaling, w = sigma * v, so T = diag(u) K diag(w) and

        u = min(a / (K w), 1),   w = min(b / (K^T u), sigma),   w *= m / (u^T K w),

    the same iterates with ten small operations per iteration instead of fourteen: the loop is
    bound by per-operation overhead at these sizes, not by arithmetic (readcli.alignment.steps).
    """
    # padding has cost 0 (K = 1) so that no NaN can enter; a = 0 and b = 0 keep it out of the plan
    full_kernel = spec.cost.mul_(-1.0 / spec.tau).exp_()  # (B, N_V, N_L) in place: spec.cost is ours
    # Scalings are kept as row vectors (B, 1, N): a batched vector-matrix product is several times
    # faster than the matrix-vector one on CPU, so K^T is stored contiguous for the K w products.
    kernel, kernel_t = full_kernel, full_kernel.transpose(1, 2).contiguous()  # (B, N_L, N_V)
    a, b = spec.a[:, None, :], spec.b[:, None, :]  # (B, 1, N_V), (B, 1, N_L)
    u = spec.row_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_V)
    mass = spec.mass[:, None, None]  # (B, 1, 1)
    sigma = mass / torch.bmm(torch.bmm(u, kernel), spec.col_mask[:, :, None].to(kernel.dtype))  # (B, 1, 1)
    w = spec.col_mask[:, None, :] * sigma  # (B, 1, N_L)
    ktu = torch.ones_like(w)  # (B, 1, N_L) u^T K of the last row scaling; set before it is read
    row_reach = torch.bmm(w, kernel_t)  # (B, 1, N_V) row sums if u were 1
    active = ActiveSet(spec, (u, w))
    done = 0
    while True:
        if active.due(done):
            col_reach = ktu * sigma  # (B, 1, N_L) column sums if v were 1
            residual = marginal_residual(
                u * row_reach, torch.minimum(a, row_reach), w * ktu, torch.minimum(b, col_reach)
            )  # (B,)
            finished, (u, w), work = active.check(
                residual, done, (u, w), (kernel, kernel_t, a, b, mass, sigma, row_reach)
            )
            if finished:
                break
            kernel, kernel_t, a, b, mass, sigma, row_reach = work
        n = active.until_due(done)
        u, ktu, w, sigma, row_reach = dykstra_iterations(n, row_reach, kernel, kernel_t, a, b, mass, sigma)
        done += n
    u, w = active.final
    plan = full_kernel.mul_(u.transpose(1, 2)).mul_(w)  # (B, N_V, N_L) in K's memory: K is done
    return active.result(plan)


@torch.no_grad()
def log_dykstra(spec: KernelInput) -> KernelOutput:
    """The same scheme on f = log u, g = log v, log sigma: no under- or overflow at any tau."""
    valid = spec.row_mask[:, :, None] & spec.col_mask[:, None, :]  # (B, N_V, N_L)
    neg_inf = torch.tensor(float("-inf"), dtype=spec.cost.dtype, device=spec.cost.device)
    full_log_k = torch.where(valid, spec.cost / -spec.tau, neg_inf)  # (B, N_V, N_L)
    log_k, row_mask, col_mask = full_log_k, spec.row_mask, spec.col_mask
    log_a = torch.where(row_mask, spec.a.log(), neg_inf)  # (B, N_V)
    log_b = torch.where(col_mask, spec.b.log(), neg_inf)  # (B, N_L)
    log_m = spec.mass.log()[:, None]  # (B, 1)
    f = torch.where(row_mask, 0.0, neg_inf)  # (B, N_V)
    g = torch.where(col_mask, 0.0, neg_inf)  # (B, N_L)
    log_sigma = log_m - log_k.flatten(1).logsumexp(-1, keepdim=True)  # (B, 1)
    col = torch.zeros_like(g)  # (B, N_L) log K^T u of the last row scaling; set before it is read
    active = ActiveSet(spec, (f, g, log_sigma))
    done = 0
    while True:
        row_reach = log_sigma + (log_k + g[:, None, :]).logsumexp(-1)  # (B, N_V) log row sums if u = 1
        if active.due(done):
            col_reach = log_sigma + col  # (B, N_L)
            residual = marginal_residual(
                torch.exp(f + row_reach)[:, None],
                torch.exp(torch.minimum(log_a, row_reach))[:, None],
                torch.exp(g + col_reach)[:, None],
                torch.exp(torch.minimum(log_b, col_reach))[:, None],
            )  # (B,)
            finished, (f, g, log_sigma), work = active.check(
                residual, done, (f, g, log_sigma), (log_k, row_mask, col_mask, log_a, log_b, log_m, row_reach)
            )
            if finished:
                break
            log_k, row_mask, col_mask, log_a, log_b, log_m, row_reach = work
        f = torch.where(row_mask, (log_a - row_reach).clamp_max(0.0), neg_inf)  # (B, N_V)
        col = (log_k + f[:, :, None]).logsumexp(1)  # (B, N_L)
        g = torch.where(col_mask, (log_b - log_sigma - col).clamp_max(0.0), neg_inf)  # (B, N_L)
        log_sigma = log_m - (g + col).logsumexp(-1, keepdim=True)  # (B, 1)
        done += 1
    f, g, log_sigma = active.final
    plan = torch.exp(log_sigma[:, :, None] + f[:, :, None] + full_log_k + g[:, None, :])  # (B, N_V, N_L)
    return active.result(plan)
