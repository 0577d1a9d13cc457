"""The contract between backbones, the adapter injection and the PVLA loss.

Dimension letters: B batch, T sequence length, L blocks, N_V video tokens, N_L text tokens, d width.

A backbone is an `nn.Module` that also implements `AdapterHost`:
- `adapter_targets()` says which modules each method may touch (matched by regex on full module
  names, as `model.named_modules()` gives them);
- `sequence_context` carries, for the forward pass in progress, which positions of each stream are
  valid and where one modality ends and the next begins, so that READ's recurrence never runs over
  padding or across the video/text boundary (see readcli/adapters/context.py);
- when `collect_block_states` is True, its forward output carries `BlockStates` under the key
  "block_states": per encoder block, the video and text token states that PVLA aligns.
- optional learnable prompt tokens are installed at the attribute `prompt_tokens` (None by default);
  a backbone that supports them prepends them in its forward (see `PromptSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from readcli.adapters.context import SequenceContext


@dataclass(frozen=True)
class FeedForwardTarget:
    """The feed-forward output linears of a group of blocks (where READ and Houlsby adapters go).

    pattern: regex matched with `re.fullmatch` against module names, e.g.
        r"transformer\\.encoder\\.layers\\.\\d+\\.linear2".
    stream: the name under which the backbone publishes this group's segment ids in its
        `sequence_context` ("encoder", "decoder", ...).
    batch_first: True if the linear sees (B, T, d), False for (T, B, d).
    """

    pattern: str
    stream: str
    batch_first: bool


@dataclass(frozen=True)
class PromptSpec:
    """Where prompt tuning prepends learnable tokens: their width on the video and the text side."""

    video_dim: int
    text_dim: int


@dataclass(frozen=True)
class AdapterTargets:
    """What a backbone offers each fine-tuning method. All names are regexes for `re.fullmatch`."""

    feed_forward: tuple[FeedForwardTarget, ...]
    # modules of the last encoder and the last decoder layer ("partial")
    partial: tuple[str, ...]
    # the last linear projection(s) before the task outputs ("proj")
    projection: tuple[str, ...]
    # nn.Linear modules LoRA wraps (must be called through their forward, so not the
    # nn.MultiheadAttention out_proj, whose weight the attention reads directly)
    lora: tuple[str, ...]
    # modules new to the backbone for this task: always trainable and saved in the bundle
    new_heads: tuple[str, ...] = ()
    prompt: PromptSpec | None = None
    # extra attributes recorded in bundles to refuse a bundle made for another backbone
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class BlockStates:
    """Per encoder block, the token states PVLA aligns, with their validity masks (True = valid)."""

    video: torch.Tensor  # (L, B, N_V, d)
    text: torch.Tensor  # (L, B, N_L, d)
    video_mask: torch.Tensor  # (B, N_V) bool
    text_mask: torch.Tensor  # (B, N_L) bool


@runtime_checkable
class AdapterHost(Protocol):
    """What the injection mechanism needs from a backbone (implemented by every readcli backbone)."""

    sequence_context: SequenceContext
    collect_block_states: bool

    def adapter_targets(self) -> AdapterTargets: ...

    def architecture_name(self) -> str: ...
