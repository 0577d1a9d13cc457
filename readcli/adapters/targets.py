"""Finding a method's target modules in a backbone by the regexes of its `AdapterTargets`."""

from __future__ import annotations

import re

import torch
from torch import nn

from readcli.backbones.contract import AdapterTargets, FeedForwardTarget
from readcli.errors import InvalidValueError


def architecture_of(model: nn.Module) -> str:
    name = getattr(model, "architecture_name", None)
    return str(name()) if callable(name) else type(model).__name__


def _collapsed_names(model: nn.Module, limit: int = 40) -> str:
    """Module names with block indices folded ('layers.N.fc2'), for error messages."""
    seen: dict[str, None] = {}
    for name, _ in model.named_modules():
        if name:
            seen[re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)", "N", name)] = None
    names = list(seen)
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def match_modules(model: nn.Module, patterns: tuple[str, ...], *, what: str) -> list[tuple[str, nn.Module]]:
    """Modules whose full name fullmatches one of `patterns`; every pattern must match at least one."""
    if not patterns:
        raise InvalidValueError(f"this backbone ({architecture_of(model)}) declares no {what} modules")
    compiled = [re.compile(p) for p in patterns]
    matches = [(n, m) for n, m in model.named_modules() if any(c.fullmatch(n) for c in compiled)]
    unmatched = [p.pattern for p in compiled if not any(p.fullmatch(n) for n, _ in matches)]
    if unmatched:
        raise InvalidValueError(
            f"no module matches the {what} pattern(s) {', '.join(repr(p) for p in unmatched)}; "
            f"available module names: {_collapsed_names(model)}"
        )
    return matches


def parameters_under(modules: list[tuple[str, nn.Module]]) -> dict[str, nn.Parameter]:
    return {
        f"{prefix}.{name}" if prefix else name: p
        for prefix, module in modules
        for name, p in module.named_parameters()
    }


def feed_forward_matches(
    model: nn.Module, targets: AdapterTargets, *, method: str
) -> list[tuple[str, nn.Linear, FeedForwardTarget]]:
    """(name, linear, target) of every feed-forward output linear, each matched by one stream."""
    found: dict[str, tuple[str, nn.Linear, FeedForwardTarget]] = {}
    for target in targets.feed_forward:
        for name, module in match_modules(model, (target.pattern,), what="feed-forward"):
            if not isinstance(module, nn.Linear):
                raise InvalidValueError(
                    f"feed-forward target {name} is a {type(module).__name__}; {method} wraps nn.Linear"
                )
            if name in found:
                raise InvalidValueError(f"feed-forward target {name} matches the patterns of two streams")
            found[name] = (name, module, target)
    if not found:
        raise InvalidValueError(f"this backbone ({architecture_of(model)}) declares no feed-forward targets")
    return list(found.values())


def reference_placement(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """(device, dtype) of the model's first parameter, or (None, None) for a model without any."""
    reference = next(model.parameters(), None)
    return (reference.device, reference.dtype) if reference is not None else (None, None)
