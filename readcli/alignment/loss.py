"""The PVLA loss: partial OT between video and text token states at every block of a backbone.

Dimension letters: L blocks, B batch, N_V video tokens, N_L text tokens, d width.

All blocks go to the solver as one batch of L * B problems (blocks stacked into the batch), with
cost 1 - cosine and uniform weights over the valid tokens. The loss is weight * (sum over blocks of
the batch mean of <T*, C>), T* detached (envelope gradient). docs/pvla.md says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from readcli.alignment.cost import cosine_cost
from readcli.alignment.partial_ot import solve_partial_ot
from readcli.alignment.sweep import partial_ot_sweep
from readcli.backbones.base import BlockStates
from readcli.errors import InvalidValueError, choices_text
from readcli.options.alignment import MASS, MASS_MODE, MAX_ITER, PVLA_WEIGHT, TAU, TOL

BLOCK_REDUCTIONS: tuple[str, ...] = ("sum", "mean")
States = torch.Tensor | Sequence[torch.Tensor]


@dataclass(frozen=True)
class PVLASettings:
    """How PVLA is computed and weighted. Defaults: docs/pvla.md ("Defaults")."""

    weight: float = PVLA_WEIGHT.default  # L_task + weight * L_PVLA
    mass: float = MASS.default  # fraction of the unit marginals transported (mass_mode "fixed")
    mass_mode: Literal["fixed", "sweep"] = "fixed"  # "sweep": the paper's min over s, for fidelity
    tau: float = TAU.default
    max_iter: int = MAX_ITER.default
    tol: float = TOL.default
    blocks: Literal["sum", "mean"] = "sum"  # the paper adds the loss at every block: "sum"

    def __post_init__(self) -> None:
        # the ranges and their words: readcli.options.alignment, as the CLI's options say them
        PVLA_WEIGHT.validate(self.weight, "PVLA weight")
        MASS.validate(self.mass, "PVLA mass")
        MASS_MODE.validate(self.mass_mode, "PVLA mass_mode")
        TAU.validate(self.tau, "PVLA tau")
        MAX_ITER.validate(self.max_iter, "PVLA max_iter")
        TOL.validate(self.tol, "PVLA tol")
        if self.blocks not in BLOCK_REDUCTIONS:
            raise InvalidValueError(
                f"PVLA blocks {self.blocks!r} is unknown: choose one of {choices_text(BLOCK_REDUCTIONS)}"
            )


def pvla_loss(
    video_states: States | BlockStates,
    text_states: States | None = None,
    video_mask: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    *,
    settings: PVLASettings | None = None,
) -> torch.Tensor:
    """The weighted PVLA term to add to the task loss: a scalar with gradient to the states.

    States: (L, B, N, d), a sequence of L tensors (B, N, d), a single (B, N, d), or a `BlockStates`
    (which carries its masks). Masks (B, N_V) / (B, N_L) bool, True = valid, shared by all blocks.
    """
    settings = settings or PVLASettings()
    if isinstance(video_states, BlockStates):
        states = video_states
        video_states, text_states = states.video, states.text
        video_mask, text_mask = states.video_mask, states.text_mask
    if text_states is None:
        raise InvalidValueError("pvla_loss needs text_states (or a BlockStates as its first argument)")
    video, text = _stack_blocks(video_states, "video_states"), _stack_blocks(text_states, "text_states")
    if video.shape[:2] != text.shape[:2] or video.shape[-1] != text.shape[-1]:
        raise InvalidValueError(
            f"video_states {tuple(video.shape)} and text_states {tuple(text.shape)} do not match: "
            "expected (L, B, N_V, d) and (L, B, N_L, d) with the same L, B and d"
        )
    blocks, batch, n_v, width = video.shape
    n_l = text.shape[2]
    video_mask = _mask(video_mask, (batch, n_v), "video_mask", video.device)
    text_mask = _mask(text_mask, (batch, n_l), "text_mask", video.device)
    # padding is zeroed so that whatever it holds cannot reach the gradient through the matmul
    video = _zero_padding(video, video_mask, "video_states")  # (L, B, N_V, d)
    text = _zero_padding(text, text_mask, "text_states")  # (L, B, N_L, d)
    if settings.weight == 0:
        return torch.zeros((), device=video.device)
    cost = cosine_cost(video.reshape(-1, n_v, width), text.reshape(-1, n_l, width))  # (L * B, N_V, N_L)
    rows, cols = video_mask.repeat(blocks, 1), text_mask.repeat(blocks, 1)  # (L * B, N_V), (L * B, N_L)
    if settings.mass_mode == "sweep":
        distance = partial_ot_sweep(
            cost, rows, cols, tau=settings.tau, max_iter=settings.max_iter, tol=settings.tol
        ).distance  # (L * B,)
    else:
        distance = solve_partial_ot(
            cost,
            rows,
            cols,
            mass=settings.mass,
            tau=settings.tau,
            max_iter=settings.max_iter,
            tol=settings.tol,
        ).distance  # (L * B,)
    per_block = distance.view(blocks, batch).mean(1)  # (L,)
    combined = per_block.sum() if settings.blocks == "sum" else per_block.mean()
    return settings.weight * combined


def _stack_blocks(states: States, name: str) -> torch.Tensor:
    """(L, B, N, d) tensor, list of L (B, N, d), or one (B, N, d) -> (L, B, N, d)."""
    if isinstance(states, torch.Tensor):
        if states.dim() == 3:
            return states[None]
        if states.dim() == 4:
            return states
        raise InvalidValueError(f"{name} has shape {tuple(states.shape)}: expected (L, B, N, d) or (B, N, d)")
    if not isinstance(states, Sequence) or not states or not all(isinstance(s, torch.Tensor) for s in states):
        raise InvalidValueError(f"{name} is {type(states).__name__}: expected a tensor or a list of tensors")
    shapes = {tuple(s.shape) for s in states}
    if len(shapes) != 1 or states[0].dim() != 3:
        raise InvalidValueError(f"{name} blocks have shapes {sorted(shapes)}: expected one shape (B, N, d)")
    return torch.stack(list(states))


def _mask(mask: torch.Tensor | None, shape: tuple[int, int], name: str, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(mask.shape) != shape or mask.dtype != torch.bool:
        raise InvalidValueError(
            f"{name} has shape {tuple(mask.shape)} and dtype {mask.dtype}: "
            f"expected bool {shape} (True = valid)"
        )
    return mask.to(device)


def _zero_padding(states: torch.Tensor, mask: torch.Tensor, name: str) -> torch.Tensor:
    """(L, B, N, d) -> the same with padded tokens zeroed; NaN or inf in a valid token is an error.

    Fast path: multiply by the float mask and test one float32 sum (a non-finite anywhere, padding
    included, makes it non-finite); only then take the slower exact route.
    """
    zeroed = states * mask.to(states.dtype)[None, :, :, None]  # (L, B, N, d)
    if bool(zeroed.detach().sum(dtype=torch.float32).isfinite()):
        return zeroed
    zeroed = torch.where(mask[None, :, :, None], states, 0.0)  # (L, B, N, d)
    with torch.no_grad():
        bad = ~torch.isfinite(zeroed).all(-1)  # (L, B, N)
        if bool(bad.any()):
            block, sample, token = (int(i) for i in bad.nonzero()[0])
            raise InvalidValueError(
                f"{name} has NaN or inf values (block {block}, sample {sample}, token {token}): "
                "features must be finite"
            )
    return zeroed
