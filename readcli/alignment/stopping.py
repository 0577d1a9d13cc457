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

    # (B, N_V, N_L) finite, each sample's min over valid pairs 0, padding 0. The kernels may overwrite
    # it (a full-size allocation costs page faults on CPU: the plain loops build K and the plan in it).
    cost: torch.Tensor
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
# At most this many check intervals pass without a check (the stop rule predicts when to look).
MAX_WAIT = 8


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
        self.next_check = spec.check_every
        self.previous: tuple[torch.Tensor, int] | None = None  # (B_a,) residual at the last check, when

    def due(self, done: int) -> bool:
        return done >= self.next_check or done >= self.spec.max_iter

    def until_due(self, done: int) -> int:
        """Iterations to run before the next check (at least 1)."""
        return max(1, min(self.next_check, self.spec.max_iter) - done)

    def check(
        self, residual: torch.Tensor, done: int, state: Sequence[torch.Tensor], work: Sequence[torch.Tensor]
    ) -> tuple[bool, Tensors, Tensors]:
        """Retire the samples within tol (all of them at the cap); True once none is left.

        residual (B_a,). One host sync: the count of samples within tol and when to check next.
        """
        self.done = done
        inside = residual <= self.spec.tol  # (B_a,)
        count, wait = (int(x) for x in torch.stack([inside.sum(), self._wait(residual, done)]).tolist())
        self.next_check = done + wait
        self.previous = (residual, done)
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
        self.previous = (residual[keep], done)
        return False, [s[keep] for s in state], [w[keep] for w in work]

    def _wait(self, residual: torch.Tensor, done: int) -> torch.Tensor:
        """Iterations until the next check, a multiple of check_every: () long.

        The residual falls geometrically once a sample is past its first iterations, so the rate
        since the last check predicts when the soonest sample can reach tol; checks before that are
        spared (up to MAX_WAIT checks' worth). A sample whose residual stalls or rises predicts
        "never" and so waits the longest; any sample within tol retires at the next check regardless.
        """
        every = self.spec.check_every
        if self.previous is None or self.spec.tol <= 0:
            fallback = every if self.spec.tol > 0 else every * MAX_WAIT
            return torch.tensor(fallback, device=residual.device)
        before, then = self.previous
        tiny = torch.finfo(residual.dtype).tiny
        rate = torch.log(residual / before.clamp_min(tiny)) / (done - then)  # (B_a,) log decay per iteration
        to_go = torch.log(self.spec.tol / residual.clamp_min(self.spec.tol))  # (B_a,) <= 0
        needed = (to_go / rate.clamp_max(-1e-12)).nan_to_num_(nan=0.0)  # (B_a,) iterations; NaN: look soon
        checks = torch.ceil(needed.min() / every).clamp(1, MAX_WAIT)  # () in checks
        return (checks * every).long()

    def result(self, plan: torch.Tensor) -> KernelOutput:
        return KernelOutput(plan, self.iterations, self.converged, self.done)


def marginal_residual(
    rows: torch.Tensor, row_cap: torch.Tensor, cols: torch.Tensor, col_cap: torch.Tensor
) -> torch.Tensor:
    """L1 distance of the marginals (B, 1, N) from their next projections: (B,)."""
    return (rows - row_cap).abs().sum((1, 2)) + (cols - col_cap).abs().sum((1, 2))
