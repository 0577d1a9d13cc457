"""(IA)^3 (Liu et al., 2022): learned elementwise rescaling of attention keys and values and of the
feed-forward block's inner activation, each vector initialised to ones so a fresh model is unchanged.

Conventions as in peft's IA3: a key or value projection's *output* is rescaled, a feed-forward output
linear's *input* (the inner activation after the nonlinearity) is rescaled. The backbone contract
says where these are (`AdapterTargets.key_value`, `AdapterTargets.feed_forward`); a key/value target
is an `nn.Linear`, or an `nn.MultiheadAttention` whose packed `in_proj` computes queries, keys and
values: then the key and value rows of its projection weight and bias are rescaled for the duration
of each forward, which equals rescaling the keys and values it computes (the stored weights stay
untouched, so checkpoints, fingerprints and state-dict names are those of the plain backbone).
No knobs. Dimension letters: d width, F feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from readcli.adapters.method import MethodConfig, MethodSpec, Site, owns_modules_of
from readcli.adapters.targets import feed_forward_matches, match_modules
from readcli.errors import InvalidValueError

SCALING_NAME = "ia3"  # the child module holding a target's vector ("...linear2.ia3.scale")
_PACKED = ("in_proj_weight", "in_proj_bias")


@dataclass(frozen=True)
class IA3Config(MethodConfig):
    method: ClassVar[str] = "ia3"


class IA3Scaling(nn.Module):
    """One learned vector `scale` (n,), ones at init: n = d for keys or values, F for the inner
    activation, 2d for a packed attention (its keys first, then its values)."""

    def __init__(
        self, n: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n, device=device, dtype=dtype))  # (n,)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.scale)


def _scale_of(module: nn.Module) -> torch.Tensor:
    scaling = module._modules[SCALING_NAME]
    assert isinstance(scaling, IA3Scaling)
    return scaling.scale


# The vectors follow the activation's dtype, so under autocast a bf16/fp16 activation stays in its dtype.
def _scale_output(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    return output * _scale_of(module).to(output.dtype)  # (..., d)


def _scale_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    x = args[0]
    return (x * _scale_of(module).to(x.dtype), *args[1:])  # (..., F)


def _scale_packed_rows(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Before an nn.MultiheadAttention forward: its packed projection with key and value rows rescaled.

    The rescaled tensors shadow the parameters as plain instance attributes, which the attention's
    forward reads; `_restore_packed` removes them after the forward, even when it raised.
    """
    assert isinstance(module, nn.MultiheadAttention)
    scale = _scale_of(module)  # (2d,)
    rows = torch.cat([scale.new_ones(module.embed_dim), scale])  # (3d,) queries unscaled
    weight = module._parameters["in_proj_weight"]  # (3d, d)
    assert weight is not None  # a packed attention (checked at installation)
    module.__dict__["in_proj_weight"] = weight * rows.unsqueeze(1)  # (3d, d)
    bias = module._parameters.get("in_proj_bias")
    if bias is not None:
        module.__dict__["in_proj_bias"] = bias * rows  # (3d,)


def _restore_packed(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    for name in _PACKED:
        module.__dict__.pop(name, None)


def _attach(module: nn.Module, n: int, name: str) -> None:
    if SCALING_NAME in module._modules:
        raise InvalidValueError(f"{name} already carries (IA)^3 vectors; build a fresh backbone")
    reference = next(module.parameters())
    module.add_module(SCALING_NAME, IA3Scaling(n, device=reference.device, dtype=reference.dtype))


def _key_value_sites(site: Site) -> list[tuple[str, nn.Module]]:
    """Key/value targets, checked to be linears or packed attentions before anything changes."""
    matches = match_modules(site.model, site.targets.key_value, what="attention key/value")
    for name, module in matches:
        packed = isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim
        if not (packed or isinstance(module, nn.Linear)):
            raise InvalidValueError(
                f"(IA)^3 key/value target {name} is a {type(module).__name__}; it rescales an nn.Linear's "
                "output or an nn.MultiheadAttention's packed key and value projection"
            )
    return matches


def install(site: Site, config: IA3Config) -> tuple[MethodConfig, list[str]]:
    """A ones vector on every key/value target and on the input of every feed-forward output linear."""
    key_value = _key_value_sites(site)
    feed_forward = feed_forward_matches(site.model, site.targets, method="(IA)^3")
    both = sorted({n for n, _ in key_value} & {n for n, _, _ in feed_forward})
    if both:
        raise InvalidValueError(
            f"(IA)^3 targets {', '.join(both)} are declared as key/value and feed-forward"
        )
    for name, module in key_value:
        if isinstance(module, nn.MultiheadAttention):
            _attach(module, 2 * module.embed_dim, name)
            module.register_forward_pre_hook(_scale_packed_rows)
            module.register_forward_hook(_restore_packed, always_call=True)
        else:
            assert isinstance(module, nn.Linear)
            _attach(module, module.out_features, name)
            module.register_forward_hook(_scale_output)
    for name, linear, _ in feed_forward:
        _attach(linear, linear.in_features, name)
        linear.register_forward_pre_hook(_scale_input)
    return config, [name for name, _ in key_value] + [name for name, _, _ in feed_forward]


SPEC = MethodSpec(
    "ia3",
    "(IA)^3: learned rescaling of attention keys and values and the feed-forward inner activation",
    IA3Config,
    install=install,
    owns=owns_modules_of(IA3Scaling),
    hooks_modules=True,
)
