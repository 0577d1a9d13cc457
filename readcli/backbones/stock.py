"""Adapter targets for stock modules: torch `nn.TransformerEncoder`/`Decoder`, HF BART and T5.

readcli backbones declare their own targets (`AdapterHost.adapter_targets()`); these presets let the
same injection work on stock models, e.g. in tests and as building blocks (the vision-guided backbone
is one). A stock model does not publish segment ids itself, so a preset also names, per stream, the
forward argument that carries its padding mask (and its key-value cache), read by a forward pre-hook
(`install_stream_sources`). The presets describe how each backbone family names its blocks and where
its padding comes from, so they live on the backbone side of the contract (readcli/backbones/contract.py).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from readcli.backbones.contract import (
    AdapterTargets,
    FeedForwardTarget,
    SequenceContext,
    segment_ids_from_masks,
)
from readcli.errors import InvalidValueError


@dataclass(frozen=True)
class StreamSource:
    """The module whose forward arguments give a stream's padding (and cache length)."""

    module: str  # exact module name; "" is the model itself
    stream: str
    mask_argument: str
    mask_marks_padding: bool  # torch key-padding masks: True = pad; HF attention masks: 1 = valid
    cache_argument: str | None = None


@dataclass(frozen=True)
class StockPreset:
    name: str
    targets: AdapterTargets
    sources: tuple[StreamSource, ...]


@dataclass(frozen=True)
class _Family:
    """How one kind of stock encoder/decoder names its parts (regexes relative to the stack)."""

    name: str
    layers: str  # attribute holding the block list
    feed_forward: str
    lora: str
    key_value: str  # modules computing attention keys/values ((IA)^3)
    mask_argument: tuple[str, str]  # (encoder, decoder)
    marks_padding: bool
    cache_argument: str | None


_TORCH = _Family(
    "torch-transformer", "layers", r"layers\.\d+\.linear2", r"layers\.\d+\.linear[12]",
    r"layers\.\d+\.(self_attn|multihead_attn)",
    ("src_key_padding_mask", "tgt_key_padding_mask"), True, None,
)  # fmt: skip
_BART = _Family(
    "hf-bart", "layers", r"layers\.\d+\.fc2", r"layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|v_proj)",
    r"layers\.\d+\.(self_attn|encoder_attn)\.(k_proj|v_proj)",
    ("attention_mask", "attention_mask"), False, "past_key_values",
)  # fmt: skip
_T5 = _Family(
    "hf-t5", "block", r"block\.\d+\.layer\.\d+\.DenseReluDense\.wo",
    r"block\.\d+\.layer\.\d+\.(SelfAttention|EncDecAttention)\.(q|v)",
    r"block\.\d+\.layer\.\d+\.(SelfAttention|EncDecAttention)\.(k|v)",
    ("attention_mask", "attention_mask"), False, "past_key_values",
)  # fmt: skip


def _classify(module: nn.Module) -> tuple[_Family, str] | None:
    """(family, "encoder" | "decoder") for a stock stack, else None."""
    if isinstance(module, nn.TransformerEncoder):
        return _TORCH, "encoder"
    if isinstance(module, nn.TransformerDecoder):
        return _TORCH, "decoder"
    try:
        # lazy: transformers is heavy; a torch-only model is classified without it
        from transformers.models.bart.modeling_bart import BartDecoder, BartEncoder
        from transformers.models.t5.modeling_t5 import T5Stack
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    if isinstance(module, BartEncoder):
        return _BART, "encoder"
    if isinstance(module, BartDecoder):
        return _BART, "decoder"
    if isinstance(module, T5Stack):
        return _T5, "decoder" if module.is_decoder else "encoder"
    return None


def _under(prefix: str, rest: str) -> str:
    return f"{re.escape(prefix)}\\.{rest}" if prefix else rest


def _stack_facts(family: _Family, stack: nn.Module) -> tuple[int, int, bool]:
    """(number of blocks, model width, batch_first) of a stock stack."""
    blocks = getattr(stack, family.layers)
    if family is _TORCH:
        first = blocks[0]
        return len(blocks), first.linear2.out_features, bool(first.self_attn.batch_first)
    config: Any = stack.config
    return len(blocks), int(config.d_model), True


def stock_preset(model: nn.Module) -> StockPreset | None:
    """The preset for a model built from stock stacks, or None when it holds none."""
    found: list[tuple[str, _Family, str, nn.Module]] = []
    for prefix, module in model.named_modules():
        classified = _classify(module)
        if classified is not None:
            found.append((prefix, classified[0], classified[1], module))
    if not found:
        return None
    kinds = Counter(kind for _, _, kind, _ in found)
    feed_forward, partial, lora, key_value, sources = [], [], [], [], []
    extra = {"class": type(model).__name__}
    for prefix, family, kind, stack in found:
        stream = kind if kinds[kind] == 1 else f"{kind}@{prefix}"
        n_blocks, width, batch_first = _stack_facts(family, stack)
        feed_forward.append(FeedForwardTarget(_under(prefix, family.feed_forward), stream, batch_first))
        partial.append(_under(prefix, f"{family.layers}\\.{n_blocks - 1}"))
        lora.append(_under(prefix, family.lora))
        key_value.append(_under(prefix, family.key_value))
        mask_argument = family.mask_argument[kind == "decoder"]
        cache = family.cache_argument if kind == "decoder" else None
        sources.append(StreamSource(prefix, stream, mask_argument, family.marks_padding, cache))
        extra[f"{stream}.blocks"] = str(n_blocks)
        extra[f"{stream}.d_model"] = str(width)
    name = "+".join(sorted({family.name for _, family, _, _ in found}))
    extra["preset"] = name
    names = {n for n, _ in model.named_modules()}
    # HF heads: the LM head is the last linear projection (tied to the input embeddings; docs/adapters.md).
    projection = ("lm_head",) if "lm_head" in names else ()
    targets = AdapterTargets(
        feed_forward=tuple(feed_forward), partial=tuple(partial), projection=projection,
        lora=tuple(lora), extra=extra, key_value=tuple(key_value),
    )  # fmt: skip
    return StockPreset(name, targets, tuple(sources))


def stock_targets(model: nn.Module) -> AdapterTargets:
    """AdapterTargets for a stock model; an error naming the supported stacks when it has none."""
    preset = stock_preset(model)
    if preset is None:
        raise InvalidValueError(
            f"{type(model).__name__} is not a readcli backbone (no adapter_targets()) and holds no stock "
            "stack readcli knows (torch TransformerEncoder/TransformerDecoder, HF BART, HF T5): "
            "pass targets=AdapterTargets(...)"
        )
    return preset.targets


def _valid_from_mask(mask: torch.Tensor, marks_padding: bool) -> torch.Tensor:
    if not marks_padding:
        return mask != 0  # (B, T) HF: 1 = attend
    if mask.dtype == torch.bool:
        return ~mask  # torch boolean key-padding mask: True = pad
    return mask == 0  # torch additive float mask: -inf = pad


def _cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    get_length = getattr(cache, "get_seq_length", None)
    if callable(get_length):
        return int(get_length())
    if isinstance(cache, tuple | list) and cache and isinstance(cache[0], tuple | list) and cache[0]:
        return int(cache[0][0].shape[-2])  # legacy tuples: (layers)(key, value) (B, H, T_past, d)
    return 0


class _StreamPublisher:
    """Forward pre-hook: publish a stream's segment ids (and cache length) from its stack's arguments."""

    def __init__(self, context: SequenceContext, source: StreamSource, module: nn.Module) -> None:
        self.context = context
        self.source = source
        self.signature = inspect.signature(module.forward)

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            arguments = self.signature.bind_partial(*args, **kwargs).arguments
        except TypeError:  # the module's own forward will report the bad call
            return None
        source = self.source
        mask = arguments.get(source.mask_argument)
        ids = None
        if isinstance(mask, torch.Tensor):
            if mask.dim() != 2:
                raise InvalidValueError(
                    f"READ reads padding from {source.mask_argument} of shape (batch, length); "
                    f"{type(module).__name__} got shape {tuple(mask.shape)}"
                )
            ids = segment_ids_from_masks(_valid_from_mask(mask, source.mask_marks_padding))  # (B, T)
        self.context.set(source.stream, ids)
        if source.cache_argument is not None:
            self.context.set_past_length(source.stream, _cache_length(arguments.get(source.cache_argument)))
        return None


def install_stream_sources(
    model: nn.Module, context: SequenceContext, sources: tuple[StreamSource, ...]
) -> None:
    """Let each stock stack publish its stream's segment ids before its forward runs.

    The ids stay published until the stack's next forward, so that gradient checkpointing, which
    re-runs blocks during backward, sees the same segments.
    """
    for source in sources:
        module = model.get_submodule(source.module)
        module.register_forward_pre_hook(_StreamPublisher(context, source, module), with_kwargs=True)
