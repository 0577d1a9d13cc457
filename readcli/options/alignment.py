"""PVLA's options and the OT solver's (docs/pvla.md "Defaults", docs/alignment.md)."""

from __future__ import annotations

from readcli.errors import choices_text
from readcli.options import Option, at_least, integer_at_least, number_in, one_of

# Temperatures readcli accepts: below 1e-6 the entropic plan is the exact one to float32 precision
# anyway, and near float32's smallest numbers exp(-C / tau) underflows to NaN (tau 1e-300); above 1e6
# the plan is uniform. The paper uses 0.05 (docs/pvla.md).
TAU_RANGE = (1e-6, 1e6)
TAU: Option[float] = Option(
    "--tau",
    0.05,
    "Entropic temperature of the OT (> 0).",
    check=number_in(*TAU_RANGE),
    valid=f"use a finite temperature > 0, within [{TAU_RANGE[0]:g}, {TAU_RANGE[1]:g}] (e.g. 0.05)",
)
MASS: Option[float] = Option(
    "--mass",
    0.5,
    "Transported mass fraction s in (0, 1].",
    check=number_in(0, 1, low_open=True),
    valid="use a fraction in (0, 1]",
    problem="is out of range",
)
MASS_MODES: tuple[str, ...] = ("fixed", "sweep")
MASS_MODE: Option[str] = Option(
    "--mass-mode",
    "fixed",
    "fixed|sweep (the paper's min over s).",
    check=one_of(MASS_MODES),
    valid=f"choose one of {choices_text(MASS_MODES)}",
    problem="is unknown",
)
PVLA: Option[bool] = Option("--pvla/--no-pvla", True, "Add the PVLA alignment loss (default on).")
PVLA_WEIGHT: Option[float] = Option(
    "--pvla-weight",
    1.0,  # the paper gives none: L_task + weight * L_PVLA
    "Weight of PVLA against the task loss.",
    check=at_least(0),
    valid="use a finite number >= 0",
)
MAX_ITER: Option[int] = Option(
    "--max-iter",
    1000,
    "Most Sinkhorn iterations.",
    integer_at_least(1),
    "use an integer >= 1",
)
TOL: Option[float] = Option(
    "--tol",
    1e-6,
    "Marginal error that stops Sinkhorn.",
    at_least(0),
    "use a finite number >= 0",
)
