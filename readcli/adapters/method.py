"""What every fine-tuning method module provides, and the checks their configs share.

A method is one module under `readcli/adapters/methods/` exposing `SPEC`, a `MethodSpec`: its name
and summary, its config class (a frozen dataclass of only that method's knobs, validated on
construction), how it installs on a backbone's targets, which existing backbone parameters it trains,
and which parameters its own modules own (trained and saved in a bundle). `readcli.adapters.registry`
lists the modules; `inject` and bundles loop over that table (docs/adapters.md, "Adding a method").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

from torch import nn

from readcli.backbones.contract import AdapterTargets, SequenceContext
from readcli.backbones.stock import StreamSource
from readcli.errors import InvalidValueError, choices_text

# Upper bounds that keep a typo from sizing an allocation: READ's recurrence is k x k per layer, so
# k = 4096 is already 64 MB a layer (the paper's k is at most a few hundred; docs/adapters.md).
MAX_BOTTLENECK = 4096
MAX_LORA_RANK = 4096
MAX_PROMPT_TOKENS = 1024
RNN_CHOICES: tuple[str, ...] = ("rnn", "gru", "lstm")


class MethodUnavailable(InvalidValueError):
    """This backbone cannot take the method; `inject` appends the methods to choose from instead."""


def check_positive_int(name: str, value: object, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidValueError(f"{name} = {value!r} is invalid: use a positive integer")
    if maximum is not None and value > maximum:
        raise InvalidValueError(f"{name} = {value!r} is invalid: use a positive integer <= {maximum}")
    return value


def check_positive_number(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidValueError(f"{name} = {value!r} is invalid: use a positive number")
    return float(value)


def check_dropout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise InvalidValueError(f"dropout = {value!r} is invalid: use a probability in [0, 1)")
    return float(value)


def check_rnn(rnn: object) -> str:
    if not isinstance(rnn, str) or rnn not in RNN_CHOICES:
        raise InvalidValueError(f"unknown RNN type {rnn!r}: choose one of {choices_text(RNN_CHOICES)}")
    return rnn


def default_bottleneck(d_model: int) -> int:
    """k for a backbone of width d when none is given: d / 4, kept within [8, 64] (docs/adapters.md)."""
    return min(64, max(8, d_model // 4))


@dataclass(frozen=True)
class MethodConfig:
    """Base of the method configs: a tagged union whose tag, `method`, is the registry name."""

    method: ClassVar[str] = ""

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def resolved(self, d_model: int) -> MethodConfig:
        """This config with sizes that depend on the backbone filled in (a bottleneck k)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """The tagged form stored in bundles: {"method": name, knob: value, ...}."""
        return {"method": self.method, **asdict(self)}


@dataclass(frozen=True)
class BottleneckConfig(MethodConfig):
    """Shared by the bottleneck adapters (READ, Houlsby): k (None = d / 4 at injection) and dropout."""

    bottleneck: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.bottleneck is not None:
            check_positive_int("bottleneck k", self.bottleneck, MAX_BOTTLENECK)
        check_dropout(self.dropout)

    def resolved(self, d_model: int) -> MethodConfig:
        return self if self.bottleneck is not None else replace(self, bottleneck=default_bottleneck(d_model))


@dataclass(frozen=True)
class Site:
    """Where a method installs: the model, its targets, its sequence context, a stock model's sources."""

    model: nn.Module
    targets: AdapterTargets
    context: SequenceContext
    stream_sources: tuple[StreamSource, ...] = ()


# install(site, config) -> (config with sizes resolved, names of the modules adapted); called after
# the checks every method shares, and must refuse (InvalidValueError) before changing the model.
Installer = Callable[[Site, Any], tuple[MethodConfig, list[str]]]
# plan(model, targets) -> (names of the existing modules trained, their parameters), before installing
Planner = Callable[[nn.Module, AdapterTargets], tuple[list[str], dict[str, nn.Parameter]]]
# owns(prefix, module) -> the parameters of `module` that the method added ({} for other modules)
Owner = Callable[[str, nn.Module], dict[str, nn.Parameter]]


def install_nothing(site: Site, config: MethodConfig) -> tuple[MethodConfig, list[str]]:
    return config, []


def plan_nothing(model: nn.Module, targets: AdapterTargets) -> tuple[list[str], dict[str, nn.Parameter]]:
    return [], {}


def owns_nothing(prefix: str, module: nn.Module) -> dict[str, nn.Parameter]:
    return {}


def owns_modules_of(*types: type[nn.Module]) -> Owner:
    """An `Owner` for methods whose added modules are of `types`: every parameter under them."""

    def owns(prefix: str, module: nn.Module) -> dict[str, nn.Parameter]:
        if not isinstance(module, types):
            return {}
        return {f"{prefix}.{n}" if prefix else n: p for n, p in module.named_parameters()}

    return owns


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry (docs/adapters.md, "Adding a method")."""

    name: str
    summary: str  # what it trains, for listings
    config: type[MethodConfig]
    install: Installer = install_nothing
    plan: Planner = plan_nothing
    owns: Owner = owns_nothing
    # True when it hooks or wraps backbone modules: torch's fused encoder kernels must then go off
    hooks_modules: bool = False
