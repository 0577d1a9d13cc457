"""The Houlsby adapter baseline (method "adapter"): O + W_up(GELU(W_down O)), W_up zero at init.

Position-wise, so padding cannot reach valid positions and no segment ids are needed.
Dimension letters: d model width, k bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from readcli.adapters.hooks import install_on_feed_forward
from readcli.adapters.method import (
    BottleneckConfig,
    MethodConfig,
    MethodSpec,
    Site,
    check_dropout,
    check_positive_int,
    owns_modules_of,
)


@dataclass(frozen=True)
class AdapterConfig(BottleneckConfig):
    """bottleneck k (None = d / 4, within [8, 64], at injection) and dropout inside the adapter."""

    method: ClassVar[str] = "adapter"


class HoulsbyAdapter(nn.Module):
    """Bottleneck adapter (Houlsby et al., 2019) on a feed-forward output; the identity at init."""

    recurrent = False

    def __init__(
        self,
        d_model: int,
        bottleneck: int,
        dropout: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("bottleneck k", bottleneck)
        self.down = nn.Linear(d_model, bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, d_model, device=device, dtype=dtype)
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.down.reset_parameters()
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        """O (..., d) -> O + W_up(GELU(W_down O)), any layout."""
        return o + self.up(self.dropout(F.gelu(self.down(o))))  # (..., d)


def install(site: Site, config: AdapterConfig) -> tuple[MethodConfig, list[str]]:
    """A Houlsby adapter on every feed-forward output linear."""

    def build(linear: nn.Linear, k: int) -> nn.Module:
        weight = linear.weight
        return HoulsbyAdapter(
            linear.out_features, k, config.dropout, device=weight.device, dtype=weight.dtype
        )

    return install_on_feed_forward(site, config, build, method="a Houlsby adapter")


SPEC = MethodSpec(
    "adapter",
    "a Houlsby down-up bottleneck after each feed-forward output",
    AdapterConfig,
    install=install,
    owns=owns_modules_of(HoulsbyAdapter),
    hooks_modules=True,
)
