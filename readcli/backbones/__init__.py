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
    "MomentDETR": "readcli.backbones.moment_detr",
    "MomentDETRConfig": "readcli.backbones.moment_detr_config",
    "tiny_moment_detr_config": "readcli.backbones.moment_detr_config",
    "UMT": "readcli.backbones.umt",
    "UMTConfig": "readcli.backbones.umt_config",
    "tiny_umt_config": "readcli.backbones.umt_config",
    "VisionGuidedSeq2Seq": "readcli.backbones.vision_guided",
    "load_vision_guided": "readcli.backbones.vision_guided_io",
    "build_vision_guided": "readcli.backbones.vision_guided_io",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
