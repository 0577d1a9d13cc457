"""Load one split of a grounding or highlight dataset directory into a ready `MomentDataset`.

Order of operations (each documented in docs/data.md): read and validate the annotations; keep one
domain (YouTube Highlights, TVSum); draw the low-resource subset; check every needed feature file
(headers only) and drop or refuse rows whose files are missing; build the feature spec from
defaults < manifest < overrides, with widths read from the files; check it against the spec a
bundle was trained with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.data.annotations import MomentAnnotation
from readcli.data.feature_spec import AUDIO_STREAM, StreamSpec, VideoFeatureSpec
from readcli.data.features import FeatureReader, FeatureScan, scan_features
from readcli.data.layout import DatasetLayout, open_layout
from readcli.data.moment_dataset import MomentDataset
from readcli.data.readers import load_annotations
from readcli.data.subset import select_subset
from readcli.data.youtube_tvsum import select_domain
from readcli.errors import (
    EmptyDatasetError,
    FeatureMissingError,
    InputFileError,
    InvalidValueError,
    choices_text,
)

logger = logging.getLogger(__name__)

FORMAT_DEFAULTS: dict[str, dict[str, Any]] = {
    # official Moment-DETR settings for QVHighlights: TEF appended, video and text L2-normalised
    "qvhighlights": {"clip_len": 2.0, "max_v_l": 75, "max_q_l": 32, "tef": True, "normalize_text": True,
                     "normalize_video": True, "normalize_audio": False},
    # UMT's loaders (datasets/tvsum.py, youtube.py) feed raw features: no TEF, no normalisation, whole
    # videos; YouTube clips are 100 frames with 50 % overlap, so clip_len is nominal there
    "youtube_highlights": {"clip_len": 2.0, "max_v_l": None, "max_q_l": 32, "tef": False,
                           "normalize_text": False, "normalize_video": False, "normalize_audio": False},
    "tvsum": {"clip_len": 2.0, "max_v_l": None, "max_q_l": 32, "tef": False, "normalize_text": False,
              "normalize_video": False, "normalize_audio": False},
}  # fmt: skip
OVERRIDABLE = (
    "clip_len", "tef", "normalize_text", "normalize_video", "normalize_audio", "max_v_l", "max_q_l",
)  # fmt: skip
_SPEC_SETTINGS = ("clip_len", "tef", "normalize_text", "max_v_l", "max_q_l")


@dataclass(frozen=True)
class SplitReport:
    """What loading a split did: rows read, kept, and dropped for missing feature files."""

    split: str
    rows_in_file: int
    rows_used: int
    skipped: tuple[str, ...]  # "qid 12: no text feature file ..." per dropped row

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


@dataclass(frozen=True)
class LoadedSplit:
    dataset: MomentDataset
    spec: VideoFeatureSpec
    report: SplitReport


def load_grounding_split(
    data: str | Path | DatasetLayout,
    split: str,
    *,
    video_streams: Sequence[str] | None = None,
    expected_spec: VideoFeatureSpec | None = None,
    spec_overrides: Mapping[str, Any] | None = None,
    domain: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    skip_missing: bool = False,
    require_labels: bool = True,
    max_windows: int = 5,
    progress: Callable[[int], None] | None = None,
) -> LoadedSplit:
    """One split of DIR as a dataset, its feature spec, and a report (the CLI prints skipped_count).

    With `expected_spec` (a bundle's), the files are read in the bundle's stream order unless DIR or
    `video_streams` declares one, and a declared order that differs is refused.
    """
    if isinstance(data, DatasetLayout):
        layout = data
    else:
        bundle_order = expected_spec.stream_names if expected_spec is not None else None
        layout = open_layout(data, video_streams=video_streams, default_streams=bundle_order)
    path = layout.split_file(split)
    annotations = load_annotations(path, fmt=layout.format)
    chosen = _choose_rows(annotations, path, split, domain=domain, samples=samples, seed=seed)
    if require_labels:
        _require_labels(chosen, split)
    declared_dims = {n: s["dim"] for n, s in layout.stream_settings.items() if "dim" in s}
    if expected_spec is not None:
        declared_dims = {s.name: s.dim for s in expected_spec.streams}
    scan = scan_features(
        chosen,
        layout.sources,
        declared_video_dims=declared_dims,
        declared_text_dim=expected_spec.text_dim if expected_spec else layout.settings.get("text_dim"),
        declared_audio_dim=expected_spec.audio.dim if expected_spec and expected_spec.audio else None,
        progress=progress,
    )
    kept, skipped = _drop_missing(chosen, scan.missing, skip_missing=skip_missing)
    if not kept:
        why = f" ({len(skipped)} skipped for missing feature files)" if skipped else ""
        raise EmptyDatasetError(f"the {split} split of {layout.root} has no usable rows{why}")
    spec = _build_spec(layout, chosen[0].format, scan, spec_overrides, expected_spec)
    if expected_spec is not None:
        expected_spec.require_compatible(spec, ours="bundle", theirs=f"data in {layout.root}")
        spec = expected_spec
    dataset = MomentDataset(kept, FeatureReader(layout.sources, spec), max_windows=max_windows, seed=seed)
    report = SplitReport(split=split, rows_in_file=len(annotations), rows_used=len(kept), skipped=skipped)
    return LoadedSplit(dataset=dataset, spec=spec, report=report)


def _choose_rows(
    annotations: list[MomentAnnotation],
    path: Path,
    split: str,
    *,
    domain: str | None,
    samples: int | None,
    seed: int,
) -> list[MomentAnnotation]:
    """One domain (highlight datasets), then the seeded subset."""
    if domain is not None:
        if annotations[0].domain is None:
            raise InvalidValueError(
                f"domain {domain!r} given, but {path} has no domains (not a highlight dataset)"
            )
        annotations = select_domain(annotations, domain)
    if samples is not None:
        annotations = select_subset(annotations, samples, seed)
    return annotations


def _drop_missing(
    annotations: list[MomentAnnotation],
    missing: list[tuple[MomentAnnotation, FeatureMissingError]],
    *,
    skip_missing: bool,
) -> tuple[list[MomentAnnotation], tuple[str, ...]]:
    """Refuse rows without feature files (naming the first and the count), or drop and list them."""
    if missing and not skip_missing:
        first = missing[0][1]
        raise FeatureMissingError(
            kind=first.kind, item_id=first.item_id, path=first.path, total_missing=len(missing)
        )
    gone = {id(ann) for ann, _ in missing}
    skipped = tuple(f"{ann.source}: {err}" for ann, err in missing)
    if skipped:
        logger.warning("skipped %d of %d rows with missing feature files", len(skipped), len(annotations))
    return [a for a in annotations if id(a) not in gone], skipped


def _require_labels(annotations: Sequence[MomentAnnotation], split: str) -> None:
    for ann in annotations:
        if not ann.has_labels:
            raise InputFileError(
                f"{ann.source}: qid {ann.qid} has no labels (relevant_windows), "
                f"but the {split} split needs them"
            )


def _build_spec(
    layout: DatasetLayout,
    fmt: str,
    scan: FeatureScan,
    overrides: Mapping[str, Any] | None,
    base: VideoFeatureSpec | None,
) -> VideoFeatureSpec:
    """Defaults (the format's, or a bundle's `base`) < manifest settings < explicit overrides.

    Widths come from the files. With a bundle, what the data does not declare is the bundle's
    choice, so only an explicit disagreement (manifest, override, stream order) fails the check.
    Per video stream, L2 comes from: the `normalize_video` override > the stream's declared
    `l2_normalize` > the manifest's `normalize_video` > the bundle's stream > the format's default.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise InvalidValueError(
            f"unknown feature settings {choices_text(unknown)} (valid: {choices_text(OVERRIDABLE)})"
        )
    defaults = dict(FORMAT_DEFAULTS[fmt])
    base_l2: dict[str, bool] = {}
    if base is not None:
        defaults.update({k: getattr(base, k) for k in _SPEC_SETTINGS})
        base_l2 = {s.name: s.l2_normalize for s in base.streams}
        if base.audio is not None:
            defaults["normalize_audio"] = base.audio.l2_normalize
    settings = {**defaults, **layout.settings, **overrides}
    streams = []
    for name in layout.sources.stream_names:
        declared = layout.stream_settings.get(name, {})
        if "normalize_video" in overrides:
            l2 = overrides["normalize_video"]
        elif "l2_normalize" in declared:
            l2 = declared["l2_normalize"]
        elif "normalize_video" in layout.settings:
            l2 = layout.settings["normalize_video"]
        else:
            l2 = base_l2.get(name, defaults["normalize_video"])
        streams.append(StreamSpec(name=name, dim=scan.video_dims[name], l2_normalize=bool(l2)))
    audio = None
    if scan.audio_dim is not None:
        audio = StreamSpec(AUDIO_STREAM, scan.audio_dim, l2_normalize=bool(settings["normalize_audio"]))
    if scan.text_dim is None:  # only when no row was scanned, which the empty-set check prevents
        raise EmptyDatasetError(f"no text feature file could be read in {layout.sources.text_dir}")
    return VideoFeatureSpec(
        streams=tuple(streams),
        text_dim=scan.text_dim,
        audio=audio,
        **{k: settings[k] for k in _SPEC_SETTINGS},
    )
