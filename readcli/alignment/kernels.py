"""The two inner loops of entropic partial OT: plain-domain scaling and log-domain, both batched.

Dimension letters: B batch, N_V video tokens (rows), N_L text tokens (columns).

Both run the Dykstra scheme of POT's `entropic_partial_wasserstein` in its scaling form
(docs/pvla.md): T = sigma * diag(u) K diag(v) with K = exp(-C / tau) and

    u = min(a / (sigma K v), 1),   v = min(b / (sigma K^T u), 1),   sigma = m / (u^T K v).

The Dykstra corrections of the three KL projections are exactly these scalings (each correction
undoes the previous projection of the same set), so the loops below give POT's answer. They run
under `torch.no_grad()` (the caller's envelope loss differentiates through the cost only) and stop
once the plan's marginals change by at most `tol` (L1, mass units) over `check_every` iterations,
looking at the device only at those checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KernelInput:
    """One batch of non-empty problems, already validated and in the compute dtype."""

    cost: torch.Tensor  # (B, N_V, N_L), finite on valid pairs, shifted so each sample's min is 0
    row_mask: torch.Tensor  # (B, N_V) bool
    col_mask: torch.Tensor  # (B, N_L) bool
    a: torch.Tensor  # (B, N_V) row weights, 0 on padding
    b: torch.Tensor  # (B, N_L) column weights, 0 on padding
    mass: torch.Tensor  # (B,) total mass to transport
    tau: float
    max_iter: int
    tol: float
    check_every: int


@dataclass(frozen=True)
class KernelOutput:
    plan: torch.Tensor  # (B, N_V, N_L), zero on padding
    iterations: torch.Tensor  # (B,) long: iterations until the sample met tol (max_iter if never)
    converged: torch.Tensor  # (B,) bool
    total_iterations: int  # iterations the batch ran


class _StopRule:
    """Marginal-change test every `check_every` iterations: one host sync per check, none between."""

    def __init__(self, first_marginals: torch.Tensor, spec: KernelInput) -> None:
        self.previous = first_marginals  # (B, N_V + N_L)
        self.spec = spec
        batch = first_marginals.shape[0]
        device = first_marginals.device
        self.converged = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,)
        self.iterations = torch.full((batch,), spec.max_iter, dtype=torch.long, device=device)  # (B,)

    def due(self, done: int) -> bool:
        return done % self.spec.check_every == 0 or done == self.spec.max_iter

    def update(self, marginals: torch.Tensor, done: int) -> bool:
        """Record which samples stopped changing; True when every sample has (one sync)."""
        change = (marginals - self.previous).abs().sum(-1)  # (B,)
        self.previous = marginals
        newly = (change <= self.spec.tol) & ~self.converged  # (B,)
        self.iterations = torch.where(newly, torch.full_like(self.iterations, done), self.iterations)
        self.converged |= newly
        return bool(self.converged.all())


@torch.no_grad()
def plain_dykstra(spec: KernelInput) -> KernelOutput:
    """Scaling-form Dykstra in float: fast; safe while (max C - min C) / tau stays moderate."""
    tiny = torch.finfo(spec.cost.dtype).tiny
    valid = spec.row_mask[:, :, None] & spec.col_mask[:, None, :]  # (B, N_V, N_L)
    # padding gets cost 0 (K = 1) so that no NaN can enter; a = 0 and b = 0 keep it out of the plan
    kernel = torch.exp(torch.where(valid, spec.cost, 0.0).div_(-spec.tau))  # (B, N_V, N_L)
    # Scalings are kept as row vectors (B, 1, N): a batched vector-matrix product is several times
    # faster than the matrix-vector one on CPU, so K^T is stored contiguous for the K v products.
    kernel_t = kernel.transpose(1, 2).contiguous()  # (B, N_L, N_V)
    a, b = spec.a[:, None, :], spec.b[:, None, :]  # (B, 1, N_V), (B, 1, N_L)
    u = spec.row_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_V)
    v = spec.col_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_L)
    mass = spec.mass[:, None, None]  # (B, 1, 1)
    sigma = mass / torch.bmm(torch.bmm(u, kernel), v.transpose(1, 2))  # (B, 1, 1)

    def marginals() -> torch.Tensor:
        rows = sigma * u * torch.bmm(v, kernel_t)  # (B, 1, N_V)
        cols = sigma * v * torch.bmm(u, kernel)  # (B, 1, N_L)
        return torch.cat([rows, cols], dim=2)[:, 0]  # (B, N_V + N_L)

    stop = _StopRule(marginals(), spec)
    done = 0
    while done < spec.max_iter:
        kv = torch.bmm(v, kernel_t).mul_(sigma).clamp_min_(tiny)  # (B, 1, N_V)
        u = torch.div(a, kv).clamp_max_(1.0)  # (B, 1, N_V)
        ktu = torch.bmm(u, kernel)  # (B, 1, N_L)
        v = torch.div(b, (ktu * sigma).clamp_min_(tiny)).clamp_max_(1.0)  # (B, 1, N_L)
        sigma = mass / (ktu * v).sum(2, keepdim=True).clamp_min_(tiny)  # (B, 1, 1)
        done += 1
        if stop.due(done) and stop.update(marginals(), done):
            break
    plan = (sigma * u).transpose(1, 2) * kernel * v  # (B, N_V, N_L)
    return KernelOutput(plan, stop.iterations, stop.converged, done)


@torch.no_grad()
def log_dykstra(spec: KernelInput) -> KernelOutput:
    """The same scheme on f = log u, g = log v, log sigma: no under- or overflow at any tau."""
    valid = spec.row_mask[:, :, None] & spec.col_mask[:, None, :]  # (B, N_V, N_L)
    neg_inf = torch.tensor(float("-inf"), dtype=spec.cost.dtype, device=spec.cost.device)
    log_k = torch.where(valid, spec.cost / -spec.tau, neg_inf)  # (B, N_V, N_L)
    log_a = torch.where(spec.row_mask, spec.a.log(), neg_inf)  # (B, N_V)
    log_b = torch.where(spec.col_mask, spec.b.log(), neg_inf)  # (B, N_L)
    log_m = spec.mass.log()[:, None]  # (B, 1)
    f = torch.where(spec.row_mask, 0.0, neg_inf)  # (B, N_V)
    g = torch.where(spec.col_mask, 0.0, neg_inf)  # (B, N_L)
    log_sigma = log_m - log_k.flatten(1).logsumexp(-1, keepdim=True)  # (B, 1)

    def row_lse() -> torch.Tensor:
        return (log_k + g[:, None, :]).logsumexp(-1)  # (B, N_V)

    def col_lse() -> torch.Tensor:
        return (log_k + f[:, :, None]).logsumexp(1)  # (B, N_L)

    def marginals() -> torch.Tensor:
        rows = torch.exp(log_sigma + f + row_lse())  # (B, N_V)
        cols = torch.exp(log_sigma + g + col_lse())  # (B, N_L)
        return torch.cat([rows, cols], dim=1)  # (B, N_V + N_L)

    stop = _StopRule(marginals(), spec)
    done = 0
    while done < spec.max_iter:
        f = torch.where(spec.row_mask, (log_a - log_sigma - row_lse()).clamp_max(0.0), neg_inf)
        col = col_lse()  # (B, N_L)
        g = torch.where(spec.col_mask, (log_b - log_sigma - col).clamp_max(0.0), neg_inf)
        log_sigma = log_m - (g + col).logsumexp(-1, keepdim=True)  # (B, 1)
        done += 1
        if stop.due(done) and stop.update(marginals(), done):
            break
    plan = torch.exp(log_sigma[:, :, None] + f[:, :, None] + log_k + g[:, None, :])  # (B, N_V, N_L)
    return KernelOutput(plan, stop.iterations, stop.converged, done)
