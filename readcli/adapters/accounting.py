"""Parameter accounting as the paper's tables report it: trainable, total and the trainable share."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ParameterCount:
    """Numbers of parameters (tied tensors counted once)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def paper_style(self) -> str:
        """Like the paper's tables: '1.17 M / 0.47 %' (trainable, share of the total)."""
        return f"{format_millions(self.trainable)} / {self.percent:.2f} %"

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.percent:.2f} %)"


def format_millions(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameter counts; `model.parameters()` already counts a tied tensor once."""
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return ParameterCount(trainable, total)
