"""Inference over whole videos: sliding windows over a backbone's clip limit, merged back to absolute time.

Names are imported on first use (torch loads with `windows`). The method: docs/ground.md.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "WindowSettings": "readcli.inference.windows",
    "WindowedGrounding": "readcli.inference.windows",
    "ground_windows": "readcli.inference.windows",
    "plan_windows": "readcli.inference.windows",
    "stitch_saliency": "readcli.inference.windows",
    "merge_moments": "readcli.inference.windows",
    "inference_spec": "readcli.inference.backbone_features",
    "spec_from_card": "readcli.inference.backbone_features",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
