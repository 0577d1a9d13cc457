"""READ and the baseline fine-tuning methods, one injection mechanism, parameter accounting, bundles.

Names are imported on first use, so `readcli.adapters.context` (imported by every backbone) does not
pull in peft or safetensors. `inject` and `fingerprint` share their module's name, so import them from
`readcli.adapters.inject` and `readcli.adapters.fingerprint`. See docs/adapters.md.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SequenceContext": "readcli.adapters.context",
    "segment_ids_from_masks": "readcli.adapters.context",
    "SegmentPlan": "readcli.adapters.segments",
    "ReadAdapter": "readcli.adapters.read",
    "HoulsbyAdapter": "readcli.adapters.houlsby",
    "PromptTokens": "readcli.adapters.prompt",
    "METHODS": "readcli.adapters.settings",
    "MethodSettings": "readcli.adapters.settings",
    "default_bottleneck": "readcli.adapters.settings",
    "InjectionReport": "readcli.adapters.inject",
    "injection_of": "readcli.adapters.inject",
    "stock_targets": "readcli.adapters.stock",
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
