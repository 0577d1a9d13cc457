"""Backbones: Moment-DETR, UMT and vision-guided BART/T5, with a registry of presets.

Names are imported on first use, so importing this package does not load torch.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "load_backbone": "readcli.backbones.registry",
    "save_backbone": "readcli.backbones.registry",
    "build_backbone": "readcli.backbones.registry",
    "PRESETS": "readcli.backbones.registry",
    "MomentDETR": "readcli.backbones.moment_detr.model",
    "MomentDETRConfig": "readcli.backbones.moment_detr.config",
    "tiny_moment_detr_config": "readcli.backbones.moment_detr.config",
    "UMT": "readcli.backbones.umt.model",
    "UMTConfig": "readcli.backbones.umt.config",
    "tiny_umt_config": "readcli.backbones.umt.config",
    "VisionGuidedSeq2Seq": "readcli.backbones.vision_guided.model",
    "load_vision_guided": "readcli.backbones.vision_guided.checkpoint_io",
    "build_vision_guided": "readcli.backbones.vision_guided.checkpoint_io",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
