"""One injection mechanism for every fine-tuning method: match target modules, install, freeze by type.

`inject` reads the backbone's `AdapterTargets` (or a stock preset), installs the method (READ and
Houlsby adapters on the feed-forward output linears, peft LoRA, prompt tokens) or picks the backbone
modules it trains (full, partial, bias, proj), then freezes every parameter and unfreezes only those
owned by readcli adapter modules, LoRA layers, prompt tokens, the declared new task heads and the
method's backbone modules. docs/adapters.md describes each method and the choices made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from readcli.adapters.accounting import ParameterCount, count_parameters
from readcli.adapters.context import SequenceContext
from readcli.adapters.hooks import attach_adapter, disable_torch_fast_path
from readcli.adapters.houlsby import HoulsbyAdapter
from readcli.adapters.lora import install_lora, is_lora_layer, lora_parameters
from readcli.adapters.prompt import PromptTokens
from readcli.adapters.read import ReadAdapter
from readcli.adapters.settings import METHODS, MethodSettings, check_method, default_bottleneck
from readcli.adapters.stock import StockPreset, install_stream_sources, stock_preset, stock_targets
from readcli.backbones.base import AdapterTargets, FeedForwardTarget
from readcli.errors import InvalidValueError, choices_text

log = logging.getLogger(__name__)

INJECTION_ATTR = "readcli_injection"
ADAPTER_MODULE_TYPES: tuple[type[nn.Module], ...] = (ReadAdapter, HoulsbyAdapter, PromptTokens)


@dataclass(frozen=True)
class InjectionReport:
    """What `inject` did: the settings it used (k resolved), where, and what now trains."""

    settings: MethodSettings
    architecture: str
    modules: tuple[str, ...]  # modules adapted (read, adapter, lora, prompt) or unfrozen (others)
    trainable: tuple[str, ...]  # trainable parameter names
    count: ParameterCount
    backbone_extra: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.settings.method}: {self.count.paper_style()} trainable ({self.count})"


def injection_of(model: nn.Module) -> InjectionReport | None:
    """The report of the method injected into `model`, or None."""
    report = model.__dict__.get(INJECTION_ATTR)
    return report if isinstance(report, InjectionReport) else None


def architecture_of(model: nn.Module) -> str:
    name = getattr(model, "architecture_name", None)
    return str(name()) if callable(name) else type(model).__name__


def resolve_targets(
    model: nn.Module, targets: AdapterTargets | None
) -> tuple[AdapterTargets, StockPreset | None]:
    """The targets to use: given ones, the backbone's own, or a stock preset (with its stream sources)."""
    declared = getattr(model, "adapter_targets", None)
    preset = None if callable(declared) else stock_preset(model)
    if targets is not None:
        return targets, preset
    if callable(declared):
        return declared(), None
    return stock_targets(model), preset


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


def _parameters_under(modules: list[tuple[str, nn.Module]]) -> dict[str, nn.Parameter]:
    return {
        f"{prefix}.{name}" if prefix else name: p
        for prefix, module in modules
        for name, p in module.named_parameters()
    }


def _bias_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    found = {n: p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] in ("bias", "in_proj_bias")}
    if not found:
        raise InvalidValueError(
            f"method 'bias' (BitFit) found no bias parameters in {architecture_of(model)}; "
            f"choose another method: {choices_text(m for m in METHODS if m != 'bias')}"
        )
    return found


def _plan_backbone(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets
) -> tuple[list[str], dict[str, nn.Parameter]]:
    """(modules the method trains, their parameters plus the new heads'), before injecting anything."""
    planned: dict[str, nn.Parameter] = {}
    if targets.new_heads:
        planned.update(_parameters_under(match_modules(model, targets.new_heads, what="new head")))
    chosen: list[tuple[str, nn.Module]] = []
    if settings.method == "full":
        chosen = [("", model)]
    elif settings.method == "partial":
        chosen = match_modules(model, targets.partial, what="partial (last layer)")
    elif settings.method == "proj":
        chosen = match_modules(model, targets.projection, what="projection")
    planned.update(_parameters_under(chosen))
    names = [name for name, _ in chosen]
    if settings.method == "bias":
        biases = _bias_parameters(model)
        planned.update(biases)
        names = sorted({name.rsplit(".", 1)[0] for name in biases})
    return names, planned


def planned_backbone_parameters(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets
) -> dict[str, nn.Parameter]:
    """The existing parameters `settings.method` trains (new heads included), before injecting anything."""
    return _plan_backbone(model, settings, targets)[1]


def _feed_forward_matches(
    model: nn.Module, targets: AdapterTargets
) -> list[tuple[str, nn.Linear, FeedForwardTarget]]:
    found: dict[str, tuple[str, nn.Linear, FeedForwardTarget]] = {}
    for target in targets.feed_forward:
        for name, module in match_modules(model, (target.pattern,), what="feed-forward"):
            if not isinstance(module, nn.Linear):
                raise InvalidValueError(
                    f"feed-forward target {name} is a {type(module).__name__}; "
                    "READ and Houlsby adapters wrap nn.Linear"
                )
            if name in found:
                raise InvalidValueError(f"feed-forward target {name} matches the patterns of two streams")
            found[name] = (name, module, target)
    if not found:
        raise InvalidValueError(f"this backbone ({architecture_of(model)}) declares no feed-forward targets")
    return list(found.values())


Installer = Callable[
    [nn.Module, MethodSettings, AdapterTargets, SequenceContext], tuple[MethodSettings, list[str]]
]


def _install_bottleneck(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets, context: SequenceContext
) -> tuple[MethodSettings, list[str]]:
    """READ or Houlsby adapters on every feed-forward output linear."""
    matches = _feed_forward_matches(model, targets)
    settings = settings.resolved(matches[0][1].out_features)
    k = settings.bottleneck or default_bottleneck(matches[0][1].out_features)  # resolved() already set it
    for _, linear, target in matches:
        device, dtype = linear.weight.device, linear.weight.dtype
        adapter: nn.Module
        if settings.method == "read":
            adapter = ReadAdapter(
                linear.out_features, k, settings.rnn, settings.dropout, device=device, dtype=dtype
            )
        else:
            adapter = HoulsbyAdapter(linear.out_features, k, settings.dropout, device=device, dtype=dtype)
        attach_adapter(linear, adapter, context=context, stream=target.stream, batch_first=target.batch_first)
    return settings, [name for name, _, _ in matches]


def _install_lora(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets, context: SequenceContext
) -> tuple[MethodSettings, list[str]]:
    matches = match_modules(model, targets.lora, what="LoRA")
    install_lora(model, targets.lora, [name for name, _ in matches], settings)
    return settings, [name for name, _ in matches]


def _install_prompt(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets, context: SequenceContext
) -> tuple[MethodSettings, list[str]]:
    spec = targets.prompt
    if spec is None:
        raise InvalidValueError(
            f"{architecture_of(model)} does not accept prompt tokens (its AdapterTargets.prompt is None); "
            f"choose another method: {choices_text(m for m in METHODS if m != 'prompt')}"
        )
    if getattr(model, "prompt_tokens", None) is not None:
        raise InvalidValueError(
            f"{architecture_of(model)} already carries prompt tokens; build a fresh backbone"
        )
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else None
    dtype = reference.dtype if reference is not None else None
    n = settings.prompt_tokens
    model.prompt_tokens = PromptTokens(n, n, spec.video_dim, spec.text_dim, device=device, dtype=dtype)
    return settings, ["prompt_tokens"]


def _install_nothing(
    model: nn.Module, settings: MethodSettings, targets: AdapterTargets, context: SequenceContext
) -> tuple[MethodSettings, list[str]]:
    return settings, []


_INSTALLERS: dict[str, Installer] = {
    "full": _install_nothing,
    "partial": _install_nothing,
    "bias": _install_nothing,
    "proj": _install_nothing,
    "lora": _install_lora,
    "prompt": _install_prompt,
    "adapter": _install_bottleneck,
    "read": _install_bottleneck,
}


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters owned, by module type, by readcli adapter modules and peft LoRA layers."""
    owned: dict[str, nn.Parameter] = {}
    for prefix, module in model.named_modules():
        if isinstance(module, ADAPTER_MODULE_TYPES):
            owned.update(_parameters_under([(prefix, module)]))
        elif is_lora_layer(module):
            owned.update(lora_parameters(prefix, module))
    return owned


def _settings_from(method: str | MethodSettings, settings: MethodSettings | None) -> MethodSettings:
    if isinstance(method, MethodSettings):
        if settings is not None and settings != method:
            raise InvalidValueError(
                "pass the method settings once: inject(model, settings) or inject(model, name, settings)"
            )
        return method
    check_method(method)
    if settings is None:
        return MethodSettings(method=method)
    if settings.method != method:
        raise InvalidValueError(f"method {method!r} differs from the settings' method {settings.method!r}")
    return settings


def inject(
    model: nn.Module,
    method: str | MethodSettings,
    settings: MethodSettings | None = None,
    *,
    targets: AdapterTargets | None = None,
    context: SequenceContext | None = None,
) -> InjectionReport:
    """Install `method` into `model` in place, freeze all else, and report what trains.

    `targets` defaults to `model.adapter_targets()` (or a stock preset); `context` to
    `model.sequence_context`, created and attached when absent. Errors come before any change.
    """
    settings = _settings_from(method, settings)
    existing = injection_of(model)
    if existing is not None:
        raise InvalidValueError(
            f"this model already has method {existing.settings.method!r} injected; build a fresh backbone"
        )
    targets, preset = resolve_targets(model, targets)
    backbone_modules, planned = _plan_backbone(model, settings, targets)
    attach_context = False
    if context is None:
        context = getattr(model, "sequence_context", None)
        if not isinstance(context, SequenceContext):
            context, attach_context = SequenceContext(), True
    settings, modules = _INSTALLERS[settings.method](model, settings, targets, context)
    if attach_context:  # only now: a refused installation leaves the model as it was
        model.__dict__["sequence_context"] = context  # a plain attribute, as AdapterHost declares
    if settings.method == "read" and preset is not None:
        install_stream_sources(model, context, preset.sources)
    owned = adapter_parameters(model)
    if settings.method in ("read", "adapter", "lora"):
        adapted = {m for m in model.modules() if isinstance(m, ADAPTER_MODULE_TYPES) or is_lora_layer(m)}
        disable_torch_fast_path(model, adapted)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in (*owned.values(), *planned.values()):
        parameter.requires_grad_(True)
    if settings.method in ("full", "partial", "proj", "bias"):
        modules = backbone_modules
    report = InjectionReport(
        settings=settings,
        architecture=architecture_of(model),
        modules=tuple(modules),
        trainable=tuple(n for n, p in model.named_parameters() if p.requires_grad),
        count=count_parameters(model),
        backbone_extra=dict(targets.extra),
    )
    model.__dict__[INJECTION_ATTR] = report
    log.info("injected %s into %s: %s", settings.method, report.architecture, report.count)
    return report
