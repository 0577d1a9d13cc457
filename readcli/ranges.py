"""Valid ranges of numeric options shared by the CLI and the library, importable without torch."""

from __future__ import annotations

# Temperatures readcli accepts: below 1e-6 the entropic plan is the exact one to float32 precision
# anyway, and near float32's smallest numbers exp(-C / tau) underflows to NaN (tau 1e-300); above 1e6
# the plan is uniform. The paper uses 0.05 (docs/pvla.md).
TAU_RANGE = (1e-6, 1e6)
TAU_VALID = f"use a finite temperature > 0, within [{TAU_RANGE[0]:g}, {TAU_RANGE[1]:g}] (e.g. 0.05)"


def valid_tau(tau: object) -> bool:
    """Whether `tau` is a number in TAU_RANGE (not a bool, not NaN)."""
    return isinstance(tau, int | float) and not isinstance(tau, bool) and TAU_RANGE[0] <= tau <= TAU_RANGE[1]


# Frames per CLIP forward pass: a batch is allocated whole (224 x 224 x 3 floats a frame), so 10**9
# would ask for terabytes; 4096 frames is already ~2.5 GB.
MAX_BATCH_SIZE = 4096
