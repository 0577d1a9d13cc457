"""Guards that name the real cause of a NaN before the learning rate gets the blame.

A backbone whose weights hold NaN or inf (a damaged checkpoint) is refused when it loads; a loss
that is non-finite at a run's very first step came before any weight update, so it is the inputs or
the backbone, never --lr. docs/training.md, "Non-finite losses".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from readcli.errors import TrainingError


def require_finite_weights(model: torch.nn.Module, what: str = "the model") -> None:
    """Refuse NaN or inf in any weight or buffer before training: a damaged backbone, named as such
    (otherwise the first loss is NaN and the learning rate looks guilty)."""
    bad = [
        name
        for name, tensor in (*model.named_parameters(), *model.named_buffers())
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
        raise TrainingError(
            f"{what} holds NaN or inf weights before training ({len(bad)} tensors: {shown}): its "
            "checkpoint is damaged; use an intact backbone (the learning rate is not the cause)"
        )


@contextmanager
def first_step_guard(*, first: bool) -> Iterator[None]:
    """Around a step: at the run's first one, a non-finite loss is reworded (it is not from --lr)."""
    try:
        yield
    except TrainingError as err:
        if not first:
            raise
        culprit = re.search(r"\(in ([^)]*)\)", str(err))
        raise TrainingError(
            f"loss is non-finite at the first step, before any weight update (in "
            f"{culprit.group(1) if culprit else 'loss'}), so the learning rate is not the cause: the "
            "backbone's outputs or the input features hold NaN or inf, or values too large to compute with"
        ) from None
