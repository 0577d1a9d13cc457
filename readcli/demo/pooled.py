"""The paper's Table 9 alternatives to PVLA: a distance between mean-pooled video and text states at
every block ("Cosine", "L2"), weighted like PVLA. Both demo tasks use it (grounding in tlg_source.py,
summarization in vls/task.py), so an ablation row means the same thing in every table."""

from __future__ import annotations

from typing import Any

import torch

from readcli.alignment import PVLASettings
from readcli.backbones.base import BlockStates

POOLED_KINDS: tuple[str, ...] = ("pooled-cosine", "pooled-l2")


def pooled_distance(states: BlockStates, kind: str) -> torch.Tensor:
    """Sum over blocks of the batch mean of 1 - cos or ||v - t|| between mean-pooled states."""
    v_mask = states.video_mask.to(states.video.dtype)[None, :, :, None]  # (1, B, N_V, 1)
    t_mask = states.text_mask.to(states.text.dtype)[None, :, :, None]  # (1, B, N_L, 1)
    video = (states.video * v_mask).sum(2) / v_mask.sum(2).clamp(min=1)  # (L, B, d)
    text = (states.text * t_mask).sum(2) / t_mask.sum(2).clamp(min=1)  # (L, B, d)
    if kind == "pooled-cosine":
        distance = 1 - torch.nn.functional.cosine_similarity(video, text, dim=-1)  # (L, B)
    else:
        distance = (video - text).norm(dim=-1)  # (L, B)
    return distance.mean(1).sum()


def add_pooled_alignment(
    total: torch.Tensor, parts: dict[str, torch.Tensor], outputs: Any, pvla: PVLASettings | None, kind: str
) -> torch.Tensor:
    """What a task's `add_alignment` adds in PVLA's place: the pooled distance, weighted by PVLA's
    weight, logged as `loss_align`."""
    weight = pvla.weight if pvla is not None else 1.0
    parts["loss_align"] = weight * pooled_distance(outputs["block_states"], kind)
    return total + parts["loss_align"]
