"""The contract between backbones, the adapter injection and the PVLA loss.

Dimension letters: B batch, T sequence length, L blocks, N_V video tokens, N_L text tokens, d width.

A backbone is an `nn.Module` that also implements `AdapterHost`:
- `adapter_targets()` says which modules each method may touch (`AdapterTargets`, matched by regex
  on full module names, as `model.named_modules()` gives them; readcli/backbones/contract.py);
- `sequence_context` carries, for the forward pass in progress, which positions of each stream are
  valid and where one modality ends and the next begins, so that READ's recurrence never runs over
  padding or across the video/text boundary, and whether a key-value cache is usable
  (`SequenceContext`, readcli/backbones/contract.py);
- when `collect_block_states` is True, its forward output carries `BlockStates` under the key
  "block_states": per encoder block, the video and text token states that PVLA aligns.
- optional learnable prompt tokens are installed at the attribute `prompt_tokens` (None by default);
  a backbone that supports them prepends them in its forward (see `PromptSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from readcli.backbones.contract import AdapterTargets, SequenceContext


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
