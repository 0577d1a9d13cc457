"""READ and the baseline fine-tuning methods, one injection mechanism, parameter accounting, bundles.

One module per method under `readcli.adapters.methods`, listed in `readcli.adapters.registry`. Names
are imported on first use, so importing the package pulls in neither peft nor safetensors. `inject`
and `fingerprint` share their module's name, so import them from `readcli.adapters.inject` and
`readcli.adapters.fingerprint`. See docs/adapters.md.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SegmentPlan": "readcli.adapters.segments",
    "ReadAdapter": "readcli.adapters.methods.read",
    "HoulsbyAdapter": "readcli.adapters.methods.adapter",
    "PromptTokens": "readcli.adapters.methods.prompt",
    "IA3Scaling": "readcli.adapters.methods.ia3",
    "METHODS": "readcli.adapters.registry",
    "METHOD_SPECS": "readcli.adapters.registry",
    "MethodSpec": "readcli.adapters.method",
    "MethodSettings": "readcli.adapters.settings",
    "method_settings": "readcli.adapters.settings",
    "settings_from_dict": "readcli.adapters.settings",
    "default_bottleneck": "readcli.adapters.method",
    "InjectionReport": "readcli.adapters.inject",
    "injection_of": "readcli.adapters.inject",
    "ParameterCount": "readcli.adapters.accounting",
    "count_parameters": "readcli.adapters.accounting",
    "save_bundle": "readcli.adapters.bundle",
    "load_bundle": "readcli.adapters.bundle",
    "read_bundle_config": "readcli.adapters.bundle",
    "BundleConfig": "readcli.adapters.bundle",
    "LoadedBundle": "readcli.adapters.bundle",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
