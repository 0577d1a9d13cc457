"""Method settings: a tagged union of the methods' configs, built in one place.

`method_settings(method, **knobs)` is the one entry point for pipelines, the demo and tests: a knob
given as None is "not given"; a knob the method does not have is refused in one line, unless it holds
the value every method that has it takes by default (the CLI passes `--rnn`'s default whatever the
method). `settings_from_dict` reads what bundles store: the tagged form written since the method
registry ({"method": "lora", "rank": 8, "alpha": 16.0, "dropout": 0.0}) and the flat form of earlier
bundles (every method's knobs always present: bottleneck, rnn, lora_rank, lora_alpha, prompt_tokens,
dropout), whose other methods' keys must hold their old defaults. docs/adapters.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from readcli.adapters.method import MethodConfig, default_bottleneck
from readcli.adapters.registry import METHOD_SPECS, METHODS, spec_of
from readcli.errors import InvalidValueError, choices_text

# The type of any method's settings (the union's base); kept under its old name for annotations.
MethodSettings = MethodConfig
# knob names of the flat bundle form -> the knob they became (in the one method that has it)
LEGACY_KNOBS: dict[str, str] = {"lora_rank": "rank", "lora_alpha": "alpha", "prompt_tokens": "tokens"}

__all__ = [
    "LEGACY_KNOBS",
    "METHODS",
    "MethodSettings",
    "default_bottleneck",
    "method_settings",
    "settings_from_dict",
]


def _defaults(knob: str) -> list[Any]:
    """The defaults `knob` has in the methods that have it (none when no method has it)."""
    found = []
    for spec in METHOD_SPECS.values():
        for f in fields(spec.config):
            if f.name == knob and f.default is not MISSING:
                found.append(f.default)
    return found


def _settings_text(config: type[MethodConfig]) -> str:
    knobs = config.knobs()
    return f"its settings are {', '.join(knobs)}" if knobs else "it has no settings"


def method_settings(method: str, **knobs: Any) -> MethodConfig:
    """The validated config of `method` from its knobs (None = not given; see the module docstring)."""
    return _build(method, knobs, {})


def _build(method: str, knobs: Mapping[str, Any], shown: Mapping[str, str]) -> MethodConfig:
    """`method_settings`; `shown` maps a knob to the name a file gave it, for the messages."""
    config = spec_of(method).config
    own = set(config.knobs())
    given: dict[str, Any] = {}
    for knob, value in knobs.items():
        if value is None:
            continue
        if knob in own:
            given[knob] = value
            continue
        defaults = _defaults(knob)
        if not defaults:
            every = sorted({k for spec in METHOD_SPECS.values() for k in spec.config.knobs()})
            raise InvalidValueError(
                f"unknown method setting {shown.get(knob, knob)!r}: the methods' settings are "
                f"{choices_text(every)}"
            )
        if any(value != default for default in defaults):
            raise InvalidValueError(
                f"{shown.get(knob, knob)} is not a setting of method {method!r}: {_settings_text(config)}"
            )
    return config(**given)


def settings_from_dict(data: Mapping[str, Any]) -> MethodConfig:
    """Settings from a bundle's JSON object, tagged or flat (earlier bundles); one line when refused."""
    knobs = {LEGACY_KNOBS.get(key, key): value for key, value in data.items() if key != "method"}
    if len(knobs) != len(data) - ("method" in data):
        raise InvalidValueError(f"a setting is given twice, under its old and its new name: {sorted(data)}")
    shown = {new: old for old, new in LEGACY_KNOBS.items() if old in data}
    return _build(data.get("method", "read"), knobs, shown)
