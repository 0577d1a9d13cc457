"""One injection mechanism for every fine-tuning method: match target modules, install, freeze by type.

`inject` reads the backbone's `AdapterTargets` (or a stock preset), looks the method up in the
registry (readcli/adapters/registry.py) and lets its module install itself (READ and Houlsby adapters
on the feed-forward output linears, peft LoRA, prompt tokens, (IA)^3 vectors) or pick the backbone
modules it trains (full, partial, bias, proj); then it freezes every parameter and unfreezes only those
owned by the methods' modules, the declared new task heads and the method's backbone modules.
docs/adapters.md describes each method and the choices made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from torch import nn

from readcli.adapters.accounting import ParameterCount, count_parameters
from readcli.adapters.hooks import disable_torch_fast_path
from readcli.adapters.method import MethodConfig, MethodSpec, MethodUnavailable, Site
from readcli.adapters.registry import METHOD_SPECS, spec_of
from readcli.adapters.settings import method_settings
from readcli.adapters.targets import architecture_of, match_modules, parameters_under
from readcli.backbones.contract import AdapterTargets, SequenceContext
from readcli.backbones.stock import StockPreset, stock_preset, stock_targets
from readcli.errors import InvalidValueError, choices_text

log = logging.getLogger(__name__)

INJECTION_ATTR = "readcli_injection"


@dataclass(frozen=True)
class InjectionReport:
    """What `inject` did: the settings it used (k resolved), where, and what now trains."""

    settings: MethodConfig
    architecture: str
    modules: tuple[str, ...]  # modules adapted (read, adapter, lora, prompt, ia3) or unfrozen (others)
    trainable: tuple[str, ...]  # trainable parameter names
    count: ParameterCount
    backbone_extra: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.settings.method}: {self.count.paper_style()} trainable ({self.count})"


def injection_of(model: nn.Module) -> InjectionReport | None:
    """The report of the method injected into `model`, or None."""
    report = model.__dict__.get(INJECTION_ATTR)
    return report if isinstance(report, InjectionReport) else None


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


def _unavailable(err: MethodUnavailable, spec: MethodSpec) -> InvalidValueError:
    others = choices_text(m for m in METHOD_SPECS if m != spec.name)
    return InvalidValueError(f"{err}; choose another method: {others}")


def _plan_backbone(
    model: nn.Module, spec: MethodSpec, targets: AdapterTargets
) -> tuple[list[str], dict[str, nn.Parameter]]:
    """(modules the method trains, their parameters plus the new heads'), before injecting anything."""
    planned: dict[str, nn.Parameter] = {}
    if targets.new_heads:
        planned.update(parameters_under(match_modules(model, targets.new_heads, what="new head")))
    try:
        names, chosen = spec.plan(model, targets)
    except MethodUnavailable as err:
        raise _unavailable(err, spec) from None
    planned.update(chosen)
    return names, planned


def planned_backbone_parameters(
    model: nn.Module, settings: MethodConfig, targets: AdapterTargets
) -> dict[str, nn.Parameter]:
    """The existing parameters `settings.method` trains (new heads included), before injecting anything."""
    return _plan_backbone(model, spec_of(settings.method), targets)[1]


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters owned by the modules a method added (adapters, LoRA layers, prompts, (IA)^3 vectors)."""
    owned: dict[str, nn.Parameter] = {}
    for prefix, module in model.named_modules():
        for spec in METHOD_SPECS.values():
            owned.update(spec.owns(prefix, module))
    return owned


def _settings_from(method: str | MethodConfig, settings: MethodConfig | None) -> MethodConfig:
    if isinstance(method, MethodConfig):
        if settings is not None and settings != method:
            raise InvalidValueError(
                "pass the method settings once: inject(model, settings) or inject(model, name, settings)"
            )
        return method
    spec_of(method)
    if settings is None:
        return method_settings(method)
    if settings.method != method:
        raise InvalidValueError(f"method {method!r} differs from the settings' method {settings.method!r}")
    return settings


def _install(
    model: nn.Module, spec: MethodSpec, settings: MethodConfig, site: Site
) -> tuple[MethodConfig, list[str]]:
    try:
        return spec.install(site, settings)
    except MethodUnavailable as err:
        raise _unavailable(err, spec) from None


def inject(
    model: nn.Module,
    method: str | MethodConfig,
    settings: MethodConfig | None = None,
    *,
    targets: AdapterTargets | None = None,
    context: SequenceContext | None = None,
) -> InjectionReport:
    """Install `method` into `model` in place, freeze all else, and report what trains.

    `targets` defaults to `model.adapter_targets()` (or a stock preset); `context` to
    `model.sequence_context`, created and attached when absent. Errors come before any change.
    """
    settings = _settings_from(method, settings)
    spec = spec_of(settings.method)
    existing = injection_of(model)
    if existing is not None:
        raise InvalidValueError(
            f"this model already has method {existing.settings.method!r} injected; build a fresh backbone"
        )
    targets, preset = resolve_targets(model, targets)
    backbone_modules, planned = _plan_backbone(model, spec, targets)
    attach_context = False
    if context is None:
        context = getattr(model, "sequence_context", None)
        if not isinstance(context, SequenceContext):
            context, attach_context = SequenceContext(), True
    sources = preset.sources if preset is not None else ()
    settings, modules = _install(model, spec, settings, Site(model, targets, context, sources))
    if attach_context:  # only now: a refused installation leaves the model as it was
        model.__dict__["sequence_context"] = context  # a plain attribute, as AdapterHost declares
    owned = adapter_parameters(model)
    if spec.hooks_modules:
        adapted = {m for p, m in model.named_modules() if any(s.owns(p, m) for s in METHOD_SPECS.values())}
        disable_torch_fast_path(model, adapted)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in (*owned.values(), *planned.values()):
        parameter.requires_grad_(True)
    report = InjectionReport(
        settings=settings,
        architecture=architecture_of(model),
        modules=tuple(backbone_modules + modules),
        trainable=tuple(n for n, p in model.named_parameters() if p.requires_grad),
        count=count_parameters(model),
        backbone_extra=dict(targets.extra),
    )
    model.__dict__[INJECTION_ATTR] = report
    log.info("injected %s into %s: %s", settings.method, report.architecture, report.count)
    return report
