"""readcli: READ-PVLA for low-resource video-language models.

The package root stays light (no torch import) so that `readcli --help` starts fast; the public names
below are imported on first use.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ReadcliError": "readcli.errors",
    # adapters: READ, the baselines, one injection mechanism, bundles
    "ReadAdapter": "readcli.adapters",
    "MethodSettings": "readcli.adapters",
    "METHODS": "readcli.adapters",
    "count_parameters": "readcli.adapters",
    "save_bundle": "readcli.adapters",
    "load_bundle": "readcli.adapters",
    # alignment: batched partial optimal transport and the PVLA loss
    "partial_ot": "readcli.alignment",
    "pvla_loss": "readcli.alignment",
    "PVLASettings": "readcli.alignment",
    # backbones
    "load_backbone": "readcli.backbones",
    "save_backbone": "readcli.backbones",
    "build_backbone": "readcli.backbones",
    # evaluation
    "evaluate_qvhighlights": "readcli.evaluation",
    "youtube_highlight_map": "readcli.evaluation",
    "tvsum_top5_map": "readcli.evaluation",
    "rouge_scores": "readcli.evaluation",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
