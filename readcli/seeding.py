"""One seed for every random source a run draws from: Python's, NumPy's global and torch's.

Pipelines seed before building an adapter (its initialisation is part of the run's seed) and the
training loop seeds before its first epoch; the demo seeds each of its runs the same way.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator (mod 2**32, its range) and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
