"""The paper's sweep over the transported mass, vectorised: every mass of every sample in one solve.

Dimension letters: B batch, S masses per sample, N_V video tokens, N_L text tokens.

Algorithm 1 of the paper loops s = 1 .. min(N_L, N_V); as a fraction of the unit marginals that is
s_k = k / min(n_V, n_L) for k = 1 .. min(n_V, n_L), with n the valid token counts of each sample.
The loss is the minimum over s. With costs >= 0 the transport cost grows with the mass, so the
minimum is (in every case measured) the smallest mass: see docs/pvla.md. Kept as a fidelity option.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from readcli.alignment.partial_ot import check_masks, solve_partial_ot
from readcli.options.alignment import MAX_ITER, TAU, TOL


@dataclass(frozen=True)
class SweepSolution:
    distances: torch.Tensor  # (B, S) distance per mass; +inf where the grid slot is unused
    masses: torch.Tensor  # (B, S) mass fractions; 0 where unused
    distance: torch.Tensor  # (B,) minimum over the sweep (grad to the cost); 0 for an empty sample
    mass: torch.Tensor  # (B,) the minimising mass; 0 for an empty sample
    plan: torch.Tensor  # (B, N_V, N_L) the minimising plan


def sweep_masses(video_mask: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (B, N_V), (B, N_L) -> the paper's mass grid (B, S) and which slots are used (B, S)."""
    counts = torch.minimum(video_mask.sum(1), text_mask.sum(1))  # (B,)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    k = torch.arange(1, width + 1, device=counts.device)  # (S,)
    used = k[None, :] <= counts[:, None]  # (B, S)
    masses = torch.where(used, k[None, :] / counts.clamp_min(1)[:, None], 0.0)  # (B, S)
    return masses, used


def partial_ot_sweep(
    cost: torch.Tensor,
    video_mask: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    *,
    tau: float = TAU.default,
    max_iter: int = MAX_ITER.default,
    tol: float = TOL.default,
) -> SweepSolution:
    """Solve every (sample, mass) pair of the paper's sweep as one batch of B * S problems."""
    video_mask, text_mask = check_masks(cost, video_mask, text_mask)
    masses, used = sweep_masses(video_mask, text_mask)  # (B, S)
    batch, slots = masses.shape
    n_v, n_l = cost.shape[1:]
    flat_used = used.flatten()  # (B * S,)
    # an unused slot gets no valid token, so the solver skips it (distance 0, masked to +inf below)
    rows = video_mask.repeat_interleave(slots, 0) & flat_used[:, None]  # (B * S, N_V)
    cols = text_mask.repeat_interleave(slots, 0) & flat_used[:, None]  # (B * S, N_L)
    solution = solve_partial_ot(
        cost.repeat_interleave(slots, 0),  # (B * S, N_V, N_L)
        rows,
        cols,
        mass=torch.where(flat_used, masses.flatten(), 1.0),
        tau=tau,
        max_iter=max_iter,
        tol=tol,
    )
    inf = torch.tensor(float("inf"), dtype=solution.distance.dtype, device=cost.device)
    distances = torch.where(used, solution.distance.view(batch, slots), inf)  # (B, S)
    best = distances.detach().argmin(1)  # (B,)
    pick = torch.arange(batch, device=cost.device)
    distance = torch.where(used.any(1), distances[pick, best], 0.0)  # (B,)
    plan = solution.plan.view(batch, slots, n_v, n_l)[pick, best]  # (B, N_V, N_L)
    return SweepSolution(distances, masses, distance, masses[pick, best], plan)
