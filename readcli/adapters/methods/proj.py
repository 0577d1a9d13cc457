"""Proj: the last linear projection(s) before the task outputs train (`AdapterTargets.projection`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from readcli.adapters.method import MethodConfig, MethodSpec
from readcli.adapters.targets import match_modules, parameters_under
from readcli.backbones.contract import AdapterTargets


@dataclass(frozen=True)
class ProjConfig(MethodConfig):
    method: ClassVar[str] = "proj"


def plan(model: nn.Module, targets: AdapterTargets) -> tuple[list[str], dict[str, nn.Parameter]]:
    chosen = match_modules(model, targets.projection, what="projection")
    return [name for name, _ in chosen], parameters_under(chosen)


SPEC = MethodSpec("proj", "the last linear projection(s) before the task outputs", ProjConfig, plan=plan)
