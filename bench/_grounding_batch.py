"""The benchmarks' training batch: random CLIP-only Moment-DETR inputs and targets of official shape.

75 clips x 514 (512 CLIP + 2 TEF), 32 words x 512, one ground-truth window per query and two saliency
pairs; drawn from a generator seeded 1, so every bench times the same batch.
"""

from __future__ import annotations

from typing import Any


def random_grounding_batch(batch: int, device: Any) -> tuple[dict[str, Any], Any]:
    """(Moment-DETR forward inputs, GroundingTargets) for `batch` queries, on `device`."""
    import torch

    from readcli.training.grounding_loss import GroundingTargets

    gen = torch.Generator().manual_seed(1)
    inputs = {
        "src_vid": torch.randn(batch, 75, 514, generator=gen).to(device),
        "src_vid_mask": torch.ones(batch, 75).to(device),
        "src_txt": torch.randn(batch, 32, 512, generator=gen).to(device),
        "src_txt_mask": torch.ones(batch, 32).to(device),
    }
    centers = torch.rand(batch, 1, generator=gen) * 0.6 + 0.2
    targets = GroundingTargets(
        spans=[torch.cat([c, torch.tensor([0.2])])[None].to(device) for c in centers],
        saliency_pos=torch.randint(0, 37, (batch, 2), generator=gen).to(device),
        saliency_neg=torch.randint(38, 75, (batch, 2), generator=gen).to(device),
    )
    return inputs, targets
