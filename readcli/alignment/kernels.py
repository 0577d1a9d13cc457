"""The two inner loops of entropic partial OT: plain-domain scaling and log-domain, both batched.

Dimension letters: B batch, N_V video tokens (rows), N_L text tokens (columns).

Both run the Dykstra scheme of POT's `entropic_partial_wasserstein` in its scaling form
(docs/pvla.md): T = sigma * diag(u) K diag(v) with K = exp(-C / tau) and

    u = min(a / (sigma K v), 1),   v = min(b / (sigma K^T u), 1),   sigma = m / (u^T K v).

The Dykstra corrections of the three KL projections are exactly these scalings (each correction
undoes the previous projection of the same set), so the loops below give POT's answer. They run
under `torch.no_grad()` (the caller's envelope loss differentiates through the cost only) and stop
once the next projections would move the plan's marginals by at most `tol` in total (L1, mass
units): the optimality residual sum_i |r_i - min(a_i, sigma (K v)_i)| + the same over columns, with
r, c the plan's row and column sums. It is checked every `check_every` iterations, the only times
the loops look at the device. (The change of the marginals between checks is not a safe test: the
scheme has plateaus where a full iteration barely moves them while the plan is still 1e-3 away.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KernelInput:
    """One batch of non-empty problems, already validated and in the compute dtype."""

    cost: torch.Tensor  # (B, N_V, N_L) finite, each sample's min over valid pairs 0, padding 0
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
    iterations: torch.Tensor  # (B,) long: iterations from which the sample stayed within tol
    converged: torch.Tensor  # (B,) bool: within tol at the last check
    total_iterations: int  # iterations the batch ran


class _StopRule:
    """Residual test every `check_every` iterations: one host sync per check, none between."""

    def __init__(self, spec: KernelInput) -> None:
        self.spec = spec
        batch = spec.mass.shape[0]
        # iteration since which each sample has stayed within tol; -1 while it is outside
        self.since = torch.full((batch,), -1, dtype=torch.long, device=spec.mass.device)  # (B,)

    def due(self, done: int) -> bool:
        return done % self.spec.check_every == 0 or done == self.spec.max_iter

    def update(self, residual: torch.Tensor, done: int) -> bool:
        """Record which samples are within tol now; True when every sample is (one sync)."""
        inside = residual <= self.spec.tol  # (B,)
        fresh = inside & (self.since < 0)  # (B,)
        self.since = torch.where(fresh, done, torch.where(inside, self.since, -1))
        return bool(inside.all())

    def result(self, plan: torch.Tensor, done: int) -> KernelOutput:
        converged = self.since >= 0  # (B,)
        iterations = torch.where(converged, self.since, done)  # (B,)
        return KernelOutput(plan, iterations, converged, done)


def _residual(
    rows: torch.Tensor, row_cap: torch.Tensor, cols: torch.Tensor, col_cap: torch.Tensor
) -> torch.Tensor:
    """L1 distance of the marginals (B, 1, N) from their next projections min(weight, sigma K v): (B,)."""
    return (rows - row_cap).abs().sum((1, 2)) + (cols - col_cap).abs().sum((1, 2))


@torch.no_grad()
def plain_dykstra(spec: KernelInput) -> KernelOutput:
    """Scaling-form Dykstra in float: fast; safe while (max C - min C) / tau stays moderate."""
    tiny = torch.finfo(spec.cost.dtype).tiny
    # padding has cost 0 (K = 1) so that no NaN can enter; a = 0 and b = 0 keep it out of the plan
    kernel = torch.exp_(spec.cost * (-1.0 / spec.tau))  # (B, N_V, N_L)
    # Scalings are kept as row vectors (B, 1, N): a batched vector-matrix product is several times
    # faster than the matrix-vector one on CPU, so K^T is stored contiguous for the K v products.
    kernel_t = kernel.transpose(1, 2).contiguous()  # (B, N_L, N_V)
    a, b = spec.a[:, None, :], spec.b[:, None, :]  # (B, 1, N_V), (B, 1, N_L)
    u = spec.row_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_V)
    v = spec.col_mask[:, None, :].to(kernel.dtype)  # (B, 1, N_L)
    mass = spec.mass[:, None, None]  # (B, 1, 1)
    sigma = mass / torch.bmm(torch.bmm(u, kernel), v.transpose(1, 2))  # (B, 1, 1)

    def residual() -> torch.Tensor:
        row_reach = sigma * torch.bmm(v, kernel_t)  # (B, 1, N_V) row sums if u were 1
        col_reach = sigma * torch.bmm(u, kernel)  # (B, 1, N_L)
        return _residual(
            u * row_reach, torch.minimum(a, row_reach), v * col_reach, torch.minimum(b, col_reach)
        )

    stop = _StopRule(spec)
    done = 0
    while done < spec.max_iter:
        kv = torch.bmm(v, kernel_t).mul_(sigma).clamp_min_(tiny)  # (B, 1, N_V)
        u = torch.div(a, kv).clamp_max_(1.0)  # (B, 1, N_V)
        ktu = torch.bmm(u, kernel)  # (B, 1, N_L)
        v = torch.div(b, (ktu * sigma).clamp_min_(tiny)).clamp_max_(1.0)  # (B, 1, N_L)
        sigma = mass / (ktu * v).sum(2, keepdim=True).clamp_min_(tiny)  # (B, 1, 1)
        done += 1
        if stop.due(done) and stop.update(residual(), done):
            break
    plan = (sigma * u).transpose(1, 2) * kernel * v  # (B, N_V, N_L)
    return stop.result(plan, done)


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

    def residual() -> torch.Tensor:
        row_reach = log_sigma + row_lse()  # (B, N_V) log of the row sums if u were 1
        col_reach = log_sigma + col_lse()  # (B, N_L)
        rows, cols = torch.exp(f + row_reach), torch.exp(g + col_reach)
        row_cap, col_cap = (
            torch.exp(torch.minimum(log_a, row_reach)),
            torch.exp(torch.minimum(log_b, col_reach)),
        )
        return _residual(rows[:, None], row_cap[:, None], cols[:, None], col_cap[:, None])

    stop = _StopRule(spec)
    done = 0
    while done < spec.max_iter:
        f = torch.where(spec.row_mask, (log_a - log_sigma - row_lse()).clamp_max(0.0), neg_inf)
        col = col_lse()  # (B, N_L)
        g = torch.where(spec.col_mask, (log_b - log_sigma - col).clamp_max(0.0), neg_inf)
        log_sigma = log_m - (g + col).logsumexp(-1, keepdim=True)  # (B, 1)
        done += 1
        if stop.due(done) and stop.update(residual(), done):
            break
    plan = torch.exp(log_sigma[:, :, None] + f[:, :, None] + log_k + g[:, None, :])  # (B, N_V, N_L)
    return stop.result(plan, done)
