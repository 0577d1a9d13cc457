"""The dataset directory `readcli finetune --task tlg --data DIR` reads (see docs/data.md).

    DIR/train.jsonl, val.jsonl, test.jsonl     (or the release names, e.g. highlight_val_release.jsonl)
    DIR/video_features/<stream>/{vid}.npz      key `features`, one row per clip; one dir per stream
    DIR/text_features/qid{qid}.npz             key `last_hidden_state`, one row per token
    DIR/audio_features/{vid}.npz               optional: key `features`, one row per clip (UMT's audio)
    DIR/dataset.json                           optional manifest: stream order, clip length, ...

With one stream directory its order is obvious; with several the order must be declared (manifest
`video_streams` or the `video_streams` argument), because concatenating them in the wrong order
runs fine and predicts nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from readcli.data.annotations import FORMATS
from readcli.data.features import FeatureSources
from readcli.errors import InputFileError, InvalidValueError, choices_text
from readcli.features.store import TEXT_KEY
from readcli.records import read_json_file, validate
from readcli.records.schemas_config import DatasetManifest

MANIFEST = "dataset.json"
SPLITS = ("train", "val", "test")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "val": ("val", "valid", "dev"),
    "test": ("test",),
    "train": ("train",),
}
AUDIO_DIR = "audio_features"  # the official UMT name (configs/_base_/datasets/*.py `audio_path`)
SETTING_KEYS = (
    "clip_len", "tef", "normalize_text", "normalize_video", "normalize_audio", "text_dim", "max_v_l",
    "max_q_l",
)  # fmt: skip
MANIFEST_KEYS = ("format", "video_streams", "video_dirs", "text_dir", "text_key", "audio_dir", "splits",
                 *SETTING_KEYS)  # fmt: skip


@dataclass(frozen=True)
class DatasetLayout:
    """Where a grounding dataset's files are, and what its manifest declares."""

    root: Path
    split_files: dict[str, Path]
    sources: FeatureSources
    format: str | None = None
    # per stream: declared dim and L2 flag (absent: dim read from the files, L2 on)
    stream_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # SETTING_KEYS the manifest sets (clip_len, tef, normalize_*, text_dim, max_v_l, max_q_l)
    settings: dict[str, Any] = field(default_factory=dict)

    def split_file(self, split: str) -> Path:
        path = self.split_files.get(split)
        if path is None:
            found = choices_text(sorted(self.split_files)) or "none"
            raise InputFileError(
                f"no {split} annotations in {self.root}: expected {split}.jsonl (splits found: {found})"
            )
        return path


def open_layout(
    root: str | Path,
    *,
    video_streams: Sequence[str] | None = None,
    default_streams: Sequence[str] | None = None,
) -> DatasetLayout:
    """Read DIR's manifest (if any) and find its split files and feature directories.

    Stream order: `video_streams` (a flag) > the manifest's `video_streams` > `default_streams` (a
    bundle's order) > the only directory under video_features/.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"dataset directory not found: {root}")
    manifest = _read_manifest(root / MANIFEST)
    declared = _declared_streams(manifest, root / MANIFEST)
    video_dirs_map = _relative_map(manifest.get("video_dirs", {}), root, "video_dirs")
    manifest_order = [name for name, _ in declared]
    names = list(video_streams or manifest_order or default_streams or _discover_streams(root))
    dirs = []
    for name in names:
        directory = video_dirs_map.get(name, root / "video_features" / name)
        if not directory.is_dir():
            present = _stream_dirs(root) + sorted(video_dirs_map)
            raise InputFileError(
                f"video feature directory for stream {name!r} not found: {directory} "
                f"(streams present: {choices_text(present) or 'none'})"
            )
        dirs.append((name, directory))
    text_dir = root / manifest["text_dir"] if "text_dir" in manifest else root / "text_features"
    if not text_dir.is_dir():
        raise InputFileError(f"text feature directory not found: {text_dir}")
    audio_dir = _audio_dir(root, manifest)
    fmt = manifest.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise InputFileError(f"{root / MANIFEST}: unknown format {fmt!r} (valid: {choices_text(FORMATS)})")
    return DatasetLayout(
        root=root,
        split_files=_find_splits(root, manifest),
        sources=FeatureSources(
            video_dirs=tuple(dirs),
            text_dir=text_dir,
            text_key=manifest.get("text_key", TEXT_KEY),
            audio_dir=audio_dir,
        ),
        format=fmt,
        stream_settings={name: settings for name, settings in declared},
        settings={k: manifest[k] for k in SETTING_KEYS if k in manifest},
    )


def _audio_dir(root: Path, manifest: dict[str, Any]) -> Path | None:
    """The manifest's `audio_dir` (null: no audio), else DIR/audio_features/ when it exists."""
    if "audio_dir" not in manifest:
        default = root / AUDIO_DIR
        return default if default.is_dir() else None
    value = manifest["audio_dir"]
    if value is None:  # audio files present but deliberately left out (e.g. for Moment-DETR)
        return None
    if not isinstance(value, str):
        raise InputFileError(
            f"{root / MANIFEST}: audio_dir must be a path relative to {root} or null, found {value!r:.60}"
        )
    if not (root / value).is_dir():
        raise InputFileError(f"{root / MANIFEST}: audio feature directory not found: {root / value}")
    return root / value


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    manifest = read_json_file(path)  # bounded nesting, no NaN/Infinity constants
    if not isinstance(manifest, dict):
        raise InputFileError(f"{path}: expected a JSON object, found {type(manifest).__name__}")
    unknown = sorted(set(manifest) - set(MANIFEST_KEYS))
    if unknown:
        raise InputFileError(
            f"{path}: unknown keys {choices_text(unknown)} (valid: {choices_text(MANIFEST_KEYS)})"
        )
    return validate(DatasetManifest, manifest, str(path)).as_dict()


def _declared_streams(manifest: dict[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """`video_streams`: names, or objects {name, dim, l2_normalize}, in concatenation order."""
    streams = manifest.get("video_streams", [])
    if not isinstance(streams, list):
        raise InputFileError(f"{path}: video_streams must be a list of stream names, found {streams!r:.60}")
    out: list[tuple[str, dict[str, Any]]] = []
    for entry in streams:
        if isinstance(entry, str):
            out.append((entry, {}))
        elif (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and not set(entry) - {"name", "dim", "l2_normalize"}
        ):
            out.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
        else:
            raise InputFileError(
                f"{path}: each video_streams entry must be a name or {{name, dim, l2_normalize}}, "
                f"found {entry!r:.60}"
            )
    return out


def _relative_map(value: object, root: Path, key: str) -> dict[str, Path]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InputFileError(f"{root / MANIFEST}: {key} must map names to paths relative to {root}")
    return {str(k): root / v for k, v in value.items()}


def _stream_dirs(root: Path) -> list[str]:
    base = root / "video_features"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def _discover_streams(root: Path) -> list[str]:
    base = root / "video_features"
    found = _stream_dirs(root)
    if not found:
        raise InputFileError(
            f"no video feature directories in {base} (expected video_features/<stream>/{{vid}}.npz)"
        )
    if len(found) > 1:
        raise InvalidValueError(
            f"several video feature streams in {base} ({choices_text(found)}): declare their "
            f'concatenation order in {root / MANIFEST} as "video_streams": [...] or with --video-streams '
            "(toolkits differ, and the wrong order fails silently)"
        )
    return found


def _find_splits(root: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    declared = _relative_map(manifest.get("splits", {}), root, "splits")
    for split, path in declared.items():
        if not path.is_file():
            raise InputFileError(f"{root / MANIFEST}: {split} annotations not found: {path}")
    found = dict(declared)
    for split in SPLITS:
        if split in found:
            continue
        candidates: list[Path] = []
        for alias in SPLIT_ALIASES[split]:
            candidates += [root / f"{alias}.jsonl", *sorted(root.glob(f"*_{alias}_release.jsonl"))]
            candidates += sorted(root.glob(f"*_{alias}_with_gt.jsonl"))
        existing = list(dict.fromkeys(p for p in candidates if p.is_file()))
        if len(existing) > 1:
            names = choices_text(p.name for p in existing)
            raise InputFileError(
                f'several {split} annotation files in {root}: {names}; name one in {MANIFEST} "splits"'
            )
        if existing:
            found[split] = existing[0]
    return found
