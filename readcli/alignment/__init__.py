"""Batched, masked entropic partial optimal transport and the PVLA loss (docs/pvla.md)."""

from __future__ import annotations

from readcli.alignment.cost import cosine_cost
from readcli.alignment.loss import PVLASettings, pvla_loss
from readcli.alignment.partial_ot import PartialOTSolution, partial_ot, solve_partial_ot
from readcli.alignment.sweep import SweepSolution, partial_ot_sweep, sweep_masses

__all__ = [
    "PVLASettings",
    "PartialOTSolution",
    "SweepSolution",
    "cosine_cost",
    "partial_ot",
    "partial_ot_sweep",
    "pvla_loss",
    "solve_partial_ot",
    "sweep_masses",
]
