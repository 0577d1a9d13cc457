"""LoRA through peft: `inject_adapter_in_model` with the backbone's declared linears.

peft works on any `nn.Module` tree (it replaces each matched `nn.Linear` by a `lora.Linear` that
keeps the original as `base_layer`), so custom backbones and stock BART/T5 go through the same call.
peft is imported on first use: it pulls in transformers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from readcli.adapters.method import (
    MAX_LORA_RANK,
    MethodConfig,
    MethodSpec,
    Site,
    check_dropout,
    check_positive_int,
    check_positive_number,
)
from readcli.adapters.targets import match_modules
from readcli.errors import InvalidValueError

ADAPTER_NAME = "default"  # peft's adapter name; recorded in bundle keys ("lora_A.default.weight")


@dataclass(frozen=True)
class LoraConfig(MethodConfig):
    """rank r and alpha (peft scales the update by alpha / r); dropout on the LoRA input."""

    method: ClassVar[str] = "lora"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int("rank", self.rank, MAX_LORA_RANK)
        check_positive_number("alpha", self.alpha)
        check_dropout(self.dropout)


def _tuner_layer_type() -> type[Any] | None:
    try:
        # lazy: peft pulls in transformers; asked only once peft has been imported by an installation
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        return None
    return BaseTunerLayer


def is_lora_layer(module: nn.Module) -> bool:
    """True for a peft tuner layer (checked by type; peft is only imported once it has been used)."""
    if "peft" not in sys.modules:
        return False
    layer_type = _tuner_layer_type()
    return layer_type is not None and isinstance(module, layer_type)


def lora_parameters(prefix: str, layer: nn.Module) -> dict[str, nn.Parameter]:
    """The adapter parameters of one peft layer: those under its declared `adapter_layer_names`."""
    if not is_lora_layer(layer):
        return {}
    owned: dict[str, nn.Parameter] = {}
    for attribute in getattr(layer, "adapter_layer_names", ()):
        sub = getattr(layer, attribute, None)
        if isinstance(sub, nn.Module):
            for name, parameter in sub.named_parameters():
                owned[f"{prefix}.{attribute}.{name}" if prefix else f"{attribute}.{name}"] = parameter
    return owned


def install(site: Site, config: LoraConfig) -> tuple[MethodConfig, list[str]]:
    """Wrap every linear matched by `targets.lora` with LoRA."""
    # lazy: peft pulls in transformers, needed only when LoRA is installed
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    model, patterns = site.model, site.targets.lora
    names = [name for name, _ in match_modules(model, patterns, what="LoRA")]
    not_linear = [n for n in names if not isinstance(model.get_submodule(n), nn.Linear)]
    if not_linear:
        raise InvalidValueError(
            f"LoRA targets must be nn.Linear modules; not linear: {', '.join(not_linear[:5])}"
        )
    peft_config = PeftLoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # annotated int; peft scales by alpha / r
        lora_dropout=config.dropout,
        # A string is matched by peft with re.fullmatch against full module names, like our patterns.
        target_modules="|".join(f"(?:{p})" for p in patterns),
        bias="none",
    )
    inject_adapter_in_model(peft_config, model, adapter_name=ADAPTER_NAME)
    return config, names


SPEC = MethodSpec(
    "lora",
    "low-rank updates of the declared linears (peft LoRA)",
    LoraConfig,
    install=install,
    owns=lora_parameters,
    hooks_modules=True,
)
