"""LoRA through peft: `inject_adapter_in_model` with the backbone's declared linears.

peft works on any `nn.Module` tree (it replaces each matched `nn.Linear` by a `lora.Linear` that
keeps the original as `base_layer`), so custom backbones and stock BART/T5 go through the same call.
peft is imported on first use: it pulls in transformers.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from readcli.adapters.settings import MethodSettings
from readcli.errors import InvalidValueError

ADAPTER_NAME = "default"  # peft's adapter name; recorded in bundle keys ("lora_A.default.weight")


def _tuner_layer_type() -> type[Any] | None:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        return None
    return BaseTunerLayer


def is_lora_layer(module: nn.Module) -> bool:
    """True for a peft tuner layer (checked by type; peft is only imported once it has been used)."""
    import sys

    if "peft" not in sys.modules:
        return False
    layer_type = _tuner_layer_type()
    return layer_type is not None and isinstance(module, layer_type)


def lora_parameters(prefix: str, layer: nn.Module) -> dict[str, nn.Parameter]:
    """The adapter parameters of one peft layer: those under its declared `adapter_layer_names`."""
    owned: dict[str, nn.Parameter] = {}
    for attribute in getattr(layer, "adapter_layer_names", ()):
        sub = getattr(layer, attribute, None)
        if isinstance(sub, nn.Module):
            for name, parameter in sub.named_parameters():
                owned[f"{prefix}.{attribute}.{name}" if prefix else f"{attribute}.{name}"] = parameter
    return owned


def install_lora(
    model: nn.Module, patterns: tuple[str, ...], names: list[str], settings: MethodSettings
) -> None:
    """Wrap the modules matched by `patterns` (already checked to be `names`) with LoRA."""
    from peft import LoraConfig, inject_adapter_in_model

    not_linear = [n for n in names if not isinstance(model.get_submodule(n), nn.Linear)]
    if not_linear:
        raise InvalidValueError(
            f"LoRA targets must be nn.Linear modules; not linear: {', '.join(not_linear[:5])}"
        )
    config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,  # type: ignore[arg-type]  # annotated int; peft scales by alpha / r
        lora_dropout=settings.dropout,
        # A string is matched by peft with re.fullmatch against full module names, like our patterns.
        target_modules="|".join(f"(?:{p})" for p in patterns),
        bias="none",
    )
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
