"""Full fine-tuning: every backbone parameter trains. No knobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from readcli.adapters.method import MethodConfig, MethodSpec
from readcli.backbones.contract import AdapterTargets


@dataclass(frozen=True)
class FullConfig(MethodConfig):
    method: ClassVar[str] = "full"


def plan(model: nn.Module, targets: AdapterTargets) -> tuple[list[str], dict[str, nn.Parameter]]:
    return [""], dict(model.named_parameters())


SPEC = MethodSpec("full", "every backbone parameter (full fine-tuning)", FullConfig, plan=plan)
