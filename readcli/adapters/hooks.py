"""How an adapter joins a feed-forward output linear: a child module plus a forward hook.

The target linear stays the stock module (same class, same parameter names, so checkpoints still
load and code that reads `linear.weight` still works); the adapter becomes its child `adapter`, and a
forward hook replaces the linear's output O by adapter(O). docs/adapters.md explains why a hook and
not a wrapper module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from readcli.adapters.method import BottleneckConfig, MethodConfig, Site
from readcli.adapters.segments import SegmentPlan
from readcli.adapters.targets import feed_forward_matches
from readcli.backbones.contract import SequenceContext
from readcli.errors import InvalidValueError

ADAPTER_NAME = "adapter"


class FeedForwardHook:
    """Forward hook on a target linear: O -> adapter(O), with the segment ids of the linear's stream."""

    def __init__(self, context: SequenceContext, stream: str, batch_first: bool) -> None:
        self.context = context
        self.stream = stream
        self.batch_first = batch_first

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        adapter = module._modules.get(ADAPTER_NAME)
        if adapter is None:  # the adapter was removed
            return None
        if not isinstance(output, torch.Tensor):
            raise InvalidValueError(
                f"an adapter needs its target to return a tensor; {type(module).__name__} returned "
                f"{type(output).__name__}"
            )
        if not getattr(adapter, "recurrent", False):
            return adapter(output)
        past = self.context.past_length(self.stream)
        if past:
            raise InvalidValueError(
                f"READ adapters on stream '{self.stream}' cannot run with a key-value cache ({past} cached "
                "positions): the recurrence would restart at every generated token; generate with "
                "use_cache=False (docs/adapters.md, 'Generation')"
            )
        ids = self.context.get(self.stream)
        plan = None if ids is None else self.context.derived(self.stream, ids, SegmentPlan.build)
        return adapter(output, ids, batch_first=self.batch_first, plan=plan)


def attach_adapter(
    linear: nn.Module, adapter: nn.Module, *, context: SequenceContext, stream: str, batch_first: bool
) -> None:
    """Make `adapter` a child of `linear` and route the linear's output through it."""
    if ADAPTER_NAME in linear._modules:
        raise InvalidValueError(f"{type(linear).__name__} already carries an adapter; build a fresh backbone")
    linear.add_module(ADAPTER_NAME, adapter)
    linear.register_forward_hook(FeedForwardHook(context, stream, batch_first))


def install_on_feed_forward(
    site: Site, config: BottleneckConfig, build: Callable[[nn.Linear, int], nn.Module], *, method: str
) -> tuple[MethodConfig, list[str]]:
    """`build(linear, k)` on every feed-forward output linear, attached; k resolved for the width."""
    matches = feed_forward_matches(site.model, site.targets, method=method)
    resolved = config.resolved(matches[0][1].out_features)
    k = resolved.bottleneck if isinstance(resolved, BottleneckConfig) else None
    assert k is not None  # resolved() fills it in
    for _, linear, target in matches:
        attach_adapter(
            linear,
            build(linear, k),
            context=site.context,
            stream=target.stream,
            batch_first=target.batch_first,
        )
    return resolved, [name for name, _, _ in matches]


def _noop_pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
    return None


def disable_torch_fast_path(model: nn.Module, adapted: set[nn.Module]) -> list[str]:
    """Keep torch's fused encoder kernels from bypassing adapters; returns the layers touched.

    In eval mode `nn.TransformerEncoderLayer` may call `torch._transformer_encoder_layer_fwd` with the
    raw `linear2.weight`, skipping hooks and peft's LoRA layers; torch skips that path when a layer
    has a forward pre-hook, so each adapted layer gets a no-op one. `nn.TransformerEncoder` would also
    turn padded batches into nested tensors, which adapters cannot read: `use_nested_tensor` goes off.
    """
    touched = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.TransformerEncoderLayer | nn.TransformerEncoder):
            continue
        if not adapted.intersection(module.modules()):
            continue
        if isinstance(module, nn.TransformerEncoderLayer):
            module.register_forward_pre_hook(_noop_pre_hook)
            touched.append(name)
        elif isinstance(module, nn.TransformerEncoder):
            module.use_nested_tensor = False
    return touched
