"""Dataset readers (QVHighlights-style jsonl, YouTube Highlights, TVSum, How2) and collation with masks.

Only `readcli.data.collate` imports torch; the public names below load on first use. The layouts,
targets and choices are documented in docs/data.md.
"""

from __future__ import annotations

from readcli.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "FeatureMissingError": "readcli.errors",
    "EmptyDatasetError": "readcli.errors",
    "MomentAnnotation": "readcli.data.annotations",
    "load_annotations": "readcli.data.readers",
    "select_domain": "readcli.data.youtube_tvsum",
    "split_by_domain": "readcli.data.youtube_tvsum",
    "StreamSpec": "readcli.data.feature_spec",
    "VideoFeatureSpec": "readcli.data.feature_spec",
    "DatasetLayout": "readcli.data.layout",
    "open_layout": "readcli.data.layout",
    "load_grounding_split": "readcli.data.grounding",
    "LoadedSplit": "readcli.data.grounding",
    "SplitReport": "readcli.data.grounding",
    "MomentDataset": "readcli.data.moment_dataset",
    "MomentItem": "readcli.data.moment_dataset",
    "select_subset": "readcli.data.subset",
    "How2Limits": "readcli.data.how2",
    "How2Dataset": "readcli.data.how2",
    "load_how2_split": "readcli.data.how2",
    "MomentBatch": "readcli.data.collate",
    "collate_moments": "readcli.data.collate",
    "TorchDataset": "readcli.data.collate",
    "SummaryBatch": "readcli.data.collate",
    "collate_summaries": "readcli.data.collate",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
