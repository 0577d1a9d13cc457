"""Batched, masked entropic partial optimal transport with an envelope-theorem gradient.

Dimension letters: B batch, N_V video tokens (rows), N_L text tokens (columns).

`partial_ot` solves, per sample, min <T, C> + tau * sum T log T over T >= 0 with T 1 <= a,
T^T 1 <= b, 1^T T 1 = s, where a and b are uniform over the valid tokens (each sums to 1) and s is
the mass fraction; POT's `ot.partial.entropic_partial_wasserstein` solves the same problem one
sample at a time. The plan is found without autograd; the returned distance is <plan, C> with the
plan detached, so its gradient with respect to C is the plan itself: the exact gradient of the
regularised optimum (envelope theorem), and backward memory does not depend on the iteration count.
The math and the choices are in docs/pvla.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from readcli.alignment.kernels import KernelInput, KernelOutput, log_dykstra, plain_dykstra
from readcli.alignment.sinkhorn import log_sinkhorn, plain_sinkhorn
from readcli.errors import InvalidValueError, choices_text
from readcli.options.alignment import MAX_ITER, TAU, TOL

Domain = Literal["auto", "plain", "log"]
DOMAINS: tuple[str, ...] = ("auto", "plain", "log")
# Above this (max C - min C) / tau the kernel exp(-C / tau) spans more than float32 holds well
# (exp(-87) is its smallest normal number); such samples go to the log domain. Measured: plain
# float32 stays within 5e-7 of a float64 solution up to 100 at masses 0.3 to 1 and breaks past 150
# at mass 1 (docs/pvla.md). float64 reaches exp(-708), so its limit scales with it.
PLAIN_DOMAIN_LIMIT = 80.0
PLAIN_DOMAIN_LIMIT_FLOAT64 = 600.0


@dataclass(frozen=True)
class PartialOTSolution:
    """A solved batch: the plan (no grad), the distance (grad to the cost) and solver facts."""

    plan: torch.Tensor  # (B, N_V, N_L), float32 or float64, zero on padding
    distance: torch.Tensor  # (B,) <plan, C>; 0 for a sample with no valid token on either side
    iterations: torch.Tensor  # (B,) long: iterations from which the sample's residual stayed <= tol
    converged: torch.Tensor  # (B,) bool: residual <= tol at the end (empty samples count as converged)
    log_domain: torch.Tensor  # (B,) bool: solved in the log domain
    total_iterations: int  # iterations the batch ran (the slowest sample's)
    balanced: torch.Tensor  # (B,) bool: mass 1, solved by the balanced (Sinkhorn) fast path


def partial_ot(
    cost: torch.Tensor,
    video_mask: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    *,
    mass: float | torch.Tensor,
    tau: float = TAU.default,
    max_iter: int = MAX_ITER.default,
    tol: float = TOL.default,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic partial OT for a batch: cost (B, N_V, N_L) -> (plan (B, N_V, N_L), distance (B,)).

    Masks are (B, N_V) / (B, N_L) bool, True = valid token. `mass` is the fraction 0 < s <= 1 of
    the unit marginals to transport, a float or a (B,) tensor. See `solve_partial_ot` for the rest.
    """
    solution = solve_partial_ot(cost, video_mask, text_mask, mass=mass, tau=tau, max_iter=max_iter, tol=tol)
    return solution.plan, solution.distance


def solve_partial_ot(
    cost: torch.Tensor,
    video_mask: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    *,
    mass: float | torch.Tensor,
    tau: float = TAU.default,
    max_iter: int = MAX_ITER.default,
    tol: float = TOL.default,
    check_every: int = 10,
    domain: Domain = "auto",
    balanced_fast_path: bool = True,
) -> PartialOTSolution:
    """`partial_ot` with the solver's facts: iterations, convergence and which domain ran.

    tol: stop once the next projections would move the plan's row and column sums by at most `tol`
    in total (L1, units of mass), checked every `check_every` iterations. domain: "plain" (fast
    scaling), "log" (stable at any tau), or "auto": plain where (max C - min C) / tau <=
    PLAIN_DOMAIN_LIMIT. balanced_fast_path: samples with mass 1 (where the mass constraint cannot
    bind) are solved by Sinkhorn's two projections instead of Dykstra's three; False forces Dykstra.
    Computes in float32 (float64 for float64 costs), whatever autocast says.
    """
    _check_options(tau=tau, max_iter=max_iter, tol=tol, check_every=check_every, domain=domain)
    unmasked = video_mask is None and text_mask is None  # every pair valid: no masking work at all
    video_mask, text_mask = check_masks(cost, video_mask, text_mask)
    dtype = torch.float64 if cost.dtype == torch.float64 else torch.float32
    masses = _check_mass(mass, cost.shape[0], device=cost.device, dtype=dtype)
    options = _Options(tau, max_iter, tol, check_every, domain, balanced_fast_path)
    with torch.autocast(device_type=cost.device.type, enabled=False):
        # Float 0/1 masks: on CPU, multiplying by them is ~20x faster than bool `where` at these sizes.
        pair = None if unmasked else video_mask.to(dtype)[:, :, None] * text_mask.to(dtype)[:, None, :]
        c_valid = cost.to(dtype) if pair is None else cost.to(dtype) * pair  # (B, N_V, N_L) grad: valid only
        with torch.no_grad():
            low, high = _masked_extremes(c_valid, pair)  # (B,), (B,)
            groups = _groups(low, high, video_mask, text_mask, masses, options)
            # min and max propagate NaN and inf: finite extremes mean a finite cost, no extra pass
            finite = torch.isfinite(low).all() & torch.isfinite(high).all()  # ()
            host = torch.cat([finite.long()[None], groups]).cpu()  # the one sync
        if not bool(host[0]):  # non-finite somewhere: legitimate on padding, an error elsewhere
            c_valid = cost.to(dtype) if pair is None else torch.where(pair > 0, cost.to(dtype), 0.0)
            with torch.no_grad():
                _check_finite(c_valid)
                low, high = _masked_extremes(c_valid, pair)
                host = torch.cat([host[:1], _groups(low, high, video_mask, text_mask, masses, options).cpu()])
        with torch.no_grad():
            shifted = c_valid - low[:, None, None]  # (B, N_V, N_L) each sample's min valid cost is 0
            if pair is not None:
                shifted.mul_(pair)  # padding back to 0
            plan, facts = _solve_groups(shifted, video_mask, text_mask, masses, options, host[1:])
        distance = (plan * c_valid).sum(dim=(1, 2))  # (B,) envelope: d distance / d C = plan
    return PartialOTSolution(plan, distance, *facts)


@dataclass(frozen=True)
class _Options:
    tau: float
    max_iter: int
    tol: float
    check_every: int
    domain: Domain
    balanced_fast_path: bool


def _masked_extremes(cost: torch.Tensor, pair: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample min and max of `cost` (zero on padding) over the valid pairs: (B,), (B,)."""
    if pair is None:
        return cost.amin(dim=(1, 2)), cost.amax(dim=(1, 2))  # (aminmax is 30x slower on CPU)
    big = (1.0 - pair) * torch.finfo(cost.dtype).max  # (B, N_V, N_L) 0 on valid pairs
    return (cost + big).amin(dim=(1, 2)), (cost - big).amax(dim=(1, 2))


def _groups(
    low: torch.Tensor,
    high: torch.Tensor,
    video_mask: torch.Tensor,
    text_mask: torch.Tensor,
    masses: torch.Tensor,
    options: _Options,
) -> torch.Tensor:
    """(B,) long: 0 for an empty sample, then 1 + (1 if log domain) + (2 if balanced)."""
    nonempty = video_mask.any(1) & text_mask.any(1)  # (B,)
    if options.domain == "auto":
        limit = PLAIN_DOMAIN_LIMIT_FLOAT64 if low.dtype == torch.float64 else PLAIN_DOMAIN_LIMIT
        use_log = (high - low) / options.tau > limit  # (B,)
    else:
        use_log = torch.full_like(nonempty, options.domain == "log")
    balanced = masses >= 1.0 if options.balanced_fast_path else torch.zeros_like(nonempty)  # (B,)
    return nonempty.long() * (1 + use_log.long() + 2 * balanced.long())


def _solve_groups(
    cost: torch.Tensor,
    video_mask: torch.Tensor,
    text_mask: torch.Tensor,
    masses: torch.Tensor,
    options: _Options,
    group_host: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]]:
    """Solve each group (domain x Dykstra or Sinkhorn) of the shifted costs (min 0, padding 0);
    empty samples keep a zero plan."""
    batch = cost.shape[0]
    device = cost.device
    # one group holding the whole batch (the usual case) hands its plan over without a copy
    single = group_host.numel() > 0 and bool((group_host == group_host[0]).all()) and int(group_host[0]) > 0
    plan = torch.empty(0) if single else torch.zeros_like(cost)  # (B, N_V, N_L) when not single
    iterations = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)
    converged = group_host.eq(0).to(device)  # (B,) empty samples count as converged
    total = 0
    for code, kernel in enumerate((plain_dykstra, log_dykstra, plain_sinkhorn, log_sinkhorn), start=1):
        members = group_host == code  # (B,) on the host
        if not bool(members.any()):
            continue
        whole = bool(members.all())
        index = torch.nonzero(members).flatten().to(device)  # (B_g,)
        rows = video_mask if whole else video_mask[index]  # (B_g, N_V)
        cols = text_mask if whole else text_mask[index]  # (B_g, N_L)
        spec = KernelInput(
            cost=cost if whole else cost[index],  # (B_g, N_V, N_L) min 0 on valid pairs, 0 on padding
            row_mask=rows,
            col_mask=cols,
            a=_uniform(rows, cost.dtype),
            b=_uniform(cols, cost.dtype),
            mass=masses if whole else masses[index],
            tau=options.tau,
            max_iter=options.max_iter,
            tol=options.tol,
            check_every=options.check_every,
        )
        out: KernelOutput = kernel(spec)
        if whole:
            plan, iterations, converged = out.plan, out.iterations, out.converged
        else:
            plan.index_copy_(0, index, out.plan)
            iterations.index_copy_(0, index, out.iterations)
            converged.index_copy_(0, index, out.converged)
        total = max(total, out.total_iterations)
    log_domain, balanced = group_host % 2 == 0, group_host >= 3  # (B,) on the host
    return plan, (
        iterations,
        converged,
        (log_domain & (group_host > 0)).to(device),
        total,
        balanced.to(device),
    )


def _uniform(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, N) bool -> (B, N) weights 1 / n on the valid tokens, 0 on padding."""
    weights = mask.to(dtype)  # (B, N)
    return weights / weights.sum(1, keepdim=True)


def _check_options(*, tau: float, max_iter: int, tol: float, check_every: int, domain: str) -> None:
    TAU.validate(tau, "tau")  # the range and its words: readcli.options.alignment
    MAX_ITER.validate(max_iter, "max_iter")
    TOL.validate(tol, "tol")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise InvalidValueError(f"check_every {check_every!r} is invalid: use an integer >= 1")
    if domain not in DOMAINS:
        raise InvalidValueError(f"domain {domain!r} is unknown: choose one of {choices_text(DOMAINS)}")


def check_masks(
    cost: torch.Tensor, video_mask: torch.Tensor | None, text_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(cost, torch.Tensor) or cost.dim() != 3:
        shape = tuple(cost.shape) if isinstance(cost, torch.Tensor) else type(cost).__name__
        raise InvalidValueError(f"cost has shape {shape}: expected (B, N_V, N_L)")
    if not cost.is_floating_point():
        raise InvalidValueError(f"cost has dtype {cost.dtype}: expected a floating-point tensor")
    batch, n_v, n_l = cost.shape
    if n_v == 0 or n_l == 0:
        raise InvalidValueError(f"cost has shape {tuple(cost.shape)}: N_V and N_L must be at least 1")
    masks = []
    for name, mask, width in (("video_mask", video_mask, n_v), ("text_mask", text_mask, n_l)):
        if mask is None:
            masks.append(torch.ones(batch, width, dtype=torch.bool, device=cost.device))
            continue
        if tuple(mask.shape) != (batch, width):
            raise InvalidValueError(
                f"{name} has shape {tuple(mask.shape)}: expected {(batch, width)} to match cost "
                f"{tuple(cost.shape)}"
            )
        if mask.dtype != torch.bool:
            raise InvalidValueError(f"{name} has dtype {mask.dtype}: expected torch.bool (True = valid)")
        masks.append(mask.to(cost.device))
    return masks[0], masks[1]


def _check_mass(
    mass: float | torch.Tensor, batch: int, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if isinstance(mass, torch.Tensor):
        if tuple(mass.shape) not in ((), (batch,)):
            raise InvalidValueError(
                f"mass has shape {tuple(mass.shape)}: expected a float or a tensor of shape ({batch},)"
            )
        values = mass.detach().to(device=device, dtype=dtype).expand(batch)
    elif isinstance(mass, int | float) and not isinstance(mass, bool):
        if not 0 < mass <= 1:  # NaN fails too
            raise InvalidValueError(f"mass {mass!r} is out of range: use a fraction in (0, 1]")
        return torch.full((batch,), float(mass), device=device, dtype=dtype)
    else:
        raise InvalidValueError(f"mass {mass!r} is invalid: use a fraction in (0, 1]")
    bad = ~((values > 0) & (values <= 1))  # NaN fails both comparisons
    if bool(bad.any()):
        shown = values[bad][0].item()
        raise InvalidValueError(f"mass {shown} is out of range: use a fraction in (0, 1]")
    return values


def _check_finite(cost: torch.Tensor) -> None:
    finite = torch.isfinite(cost)  # (B, N_V, N_L), padding already zeroed
    if not bool(finite.all()):
        sample = int((~finite).flatten(1).any(1).nonzero()[0])
        count = int((~finite).sum())
        raise InvalidValueError(
            f"cost has {count} NaN or inf values (first in sample {sample}): costs must be finite"
        )
