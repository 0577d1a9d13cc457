"""BitFit: every bias term of the backbone trains (torch's packed attention `in_proj_bias` included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from readcli.adapters.method import MethodConfig, MethodSpec, MethodUnavailable
from readcli.adapters.targets import architecture_of
from readcli.backbones.contract import AdapterTargets


@dataclass(frozen=True)
class BiasConfig(MethodConfig):
    method: ClassVar[str] = "bias"


def plan(model: nn.Module, targets: AdapterTargets) -> tuple[list[str], dict[str, nn.Parameter]]:
    found = {n: p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] in ("bias", "in_proj_bias")}
    if not found:
        raise MethodUnavailable(
            f"method 'bias' (BitFit) found no bias parameters in {architecture_of(model)}"
        )
    return sorted({name.rsplit(".", 1)[0] for name in found}), found


SPEC = MethodSpec("bias", "every bias term (BitFit)", BiasConfig, plan=plan)
