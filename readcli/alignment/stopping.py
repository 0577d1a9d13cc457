"""What the inner loops share: their input, their output, and the stop rule that retires samples.

Dimension letters: B batch, B_a samples still iterating, N_V video tokens, N_L text tokens.

Every loop stops a sample once its optimality residual (how far the next projections would move
the plan's row and column sums, L1, mass units; docs/pvla.md §4) is at most `tol`. It is checked
every `check_every` iterations, the only times a loop looks at the device. A sample within `tol`
at a check leaves the batch there: its scalings are stored and the loop goes on with the others
only, so the products shrink as samples finish (the slowest sample no longer drags the whole batch
through its iterations) and a sample's answer no longer depends on the company it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    iterations: torch.Tensor  # (B,) long: the iteration at which the sample was within tol (or the cap)
    converged: torch.Tensor  # (B,) bool: within tol when it stopped
    total_iterations: int  # iterations the batch ran (its slowest sample's)


Tensors = list[torch.Tensor]


class ActiveSet:
    """The samples still iterating, and the stored final state of those that have finished.

    `state` tensors (the scalings the plan is built from) are stored when a sample leaves; `work`
    tensors (constants such as the kernel, and values carried between iterations) are only narrowed
    to the samples that stay. Both have the batch as their first dimension.
    """

    def __init__(self, spec: KernelInput, state: Sequence[torch.Tensor]) -> None:
        self.spec = spec
        batch = spec.mass.shape[0]
        device = spec.mass.device
        self.index = torch.arange(batch, device=device)  # (B_a,) original sample of each active one
        self.final = [torch.empty_like(s) for s in state]  # full-batch final state
        self.iterations = torch.full((batch,), spec.max_iter, dtype=torch.long, device=device)  # (B,)
        self.converged = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,)
        self.done = 0

    def due(self, done: int) -> bool:
        return done > 0 and (done % self.spec.check_every == 0 or done >= self.spec.max_iter)

    def check(
        self, residual: torch.Tensor, done: int, state: Sequence[torch.Tensor], work: Sequence[torch.Tensor]
    ) -> tuple[bool, Tensors, Tensors]:
        """Retire the samples within tol (all of them at the cap); True once none is left.

        residual (B_a,). One host sync: the count of samples within tol.
        """
        self.done = done
        inside = residual <= self.spec.tol  # (B_a,)
        count = int(inside.sum())
        last = done >= self.spec.max_iter
        if count == 0 and not last:
            return False, list(state), list(work)
        everyone = last or count == inside.shape[0]
        leaving = torch.ones_like(inside) if everyone else inside  # (B_a,)
        ids = self.index if everyone else self.index[leaving]  # (B_leaving,)
        for out, current in zip(self.final, state, strict=True):
            out.index_copy_(0, ids, current if everyone else current[leaving])
        self.iterations.index_copy_(0, ids, torch.where(inside[leaving], done, self.spec.max_iter))
        self.converged.index_copy_(0, ids, inside[leaving])
        if everyone:
            return True, list(state), list(work)
        keep = torch.nonzero(~inside).flatten()  # (B_a',)
        self.index = self.index[keep]
        return False, [s[keep] for s in state], [w[keep] for w in work]

    def result(self, plan: torch.Tensor) -> KernelOutput:
        return KernelOutput(plan, self.iterations, self.converged, self.done)


def marginal_residual(
    rows: torch.Tensor, row_cap: torch.Tensor, cols: torch.Tensor, col_cap: torch.Tensor
) -> torch.Tensor:
    """L1 distance of the marginals (B, 1, N) from their next projections: (B,)."""
    return (rows - row_cap).abs().sum((1, 2)) + (cols - col_cap).abs().sum((1, 2))
