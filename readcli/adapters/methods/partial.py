"""Partial fine-tuning: the last encoder and the last decoder layer train (`AdapterTargets.partial`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from readcli.adapters.method import MethodConfig, MethodSpec
from readcli.adapters.targets import match_modules, parameters_under
from readcli.backbones.contract import AdapterTargets


@dataclass(frozen=True)
class PartialConfig(MethodConfig):
    method: ClassVar[str] = "partial"


def plan(model: nn.Module, targets: AdapterTargets) -> tuple[list[str], dict[str, nn.Parameter]]:
    chosen = match_modules(model, targets.partial, what="partial (last layer)")
    return [name for name, _ in chosen], parameters_under(chosen)


SPEC = MethodSpec("partial", "the last encoder and the last decoder layer", PartialConfig, plan=plan)
