"""How2 for video-language summarization, in the layout the vision-guided BART/T5 code reads.

    ROOT/<split>/tran.tok.txt      `<video_id> <transcript>` per line   (split: train|sum_train,
    ROOT/<split>/desc.tok.txt      `<video_id> <summary>` per line       val|sum_cv, test|sum_devtest)
    ROOT/video_action_features/<video_id>.npy   (T, 2048) 3D ResNeXt-101 features, one row per 16 frames

Pairs are joined by video id (the official code zips the two files line by line, which silently
mis-pairs everything after one missing line). Ids in one file only and lines without text are
dropped and reported; a row whose feature file is missing is an error, or dropped and counted with
skip_missing. Text is not truncated here: the tokenizer does it (readcli/data/collate.py) at the
limits in `How2Limits`; video features are cut to max_video_frames rows on load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from readcli.data.features import peek_shape
from readcli.data.subset import select_subset
from readcli.errors import EmptyDatasetError, FeatureMissingError, InputFileError, InvalidValueError
from readcli.features.store import VIDEO_KEY, load_feature_array

logger = logging.getLogger(__name__)

SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train", "sum_train"),
    "val": ("val", "sum_cv", "cv"),
    "test": ("test", "sum_devtest", "devtest"),
}
FEATURES_DIR = "video_action_features"


@dataclass(frozen=True)
class How2Limits:
    """Model input limits (the vision-guided BART defaults). Text is truncated by the tokenizer."""

    max_input_tokens: int = 512
    max_target_tokens: int = 64
    max_video_frames: int = 256
    video_dim: int = 2048

    def __post_init__(self) -> None:
        for name in ("max_input_tokens", "max_target_tokens", "max_video_frames", "video_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class How2Example:
    video_id: str
    transcript: str
    summary: str
    source: str  # "tran.tok.txt:12 / desc.tok.txt:12"

    @property
    def key(self) -> str:
        return self.video_id


@dataclass(frozen=True)
class How2Report:
    """What loading a split dropped, and why (the CLI prints the counts)."""

    split: str
    pairs_used: int
    only_transcript: tuple[str, ...]  # ids with a transcript but no summary
    only_summary: tuple[str, ...]
    empty_lines: tuple[str, ...]  # "file:line" of blank lines and of ids without text
    missing_features: tuple[str, ...]  # ids dropped with skip_missing


@dataclass(frozen=True, eq=False)
class How2Item:
    video_id: str
    transcript: str
    summary: str
    video: np.ndarray  # (T, 2048) float32, T <= max_video_frames


def read_id_text_file(path: Path) -> tuple[dict[str, tuple[str, int]], list[str], set[str]]:
    """`<video_id> <text>` lines -> {id: (text, line)}, "file:line" of empty lines, ids without text."""
    if not path.is_file():
        raise InputFileError(f"How2 text file not found: {path}")
    entries: dict[str, tuple[str, int]] = {}
    empty: list[str] = []
    textless: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read as UTF-8 text ({err})") from None
    for line_no, line in enumerate(lines, start=1):
        parts = line.strip().split(maxsplit=1)
        if len(parts) < 2:
            empty.append(f"{path}:{line_no}")
            textless.update(parts)
            continue
        video_id, text = parts
        if "/" in video_id or "\\" in video_id or video_id in (".", "..") or len(video_id.encode()) > 200:
            raise InputFileError(
                f"{path}:{line_no}: video id {video_id!r:.60} must be a plain file name of at most 200 bytes "
                "(no '/', '\\', '.' or '..': it names <video_id>.npy)"
            )
        previous = entries.get(video_id)
        if previous is not None and previous[0] != text:
            raise InputFileError(
                f"{path}:{line_no}: video id {video_id} appears again with another text "
                f"(first at line {previous[1]})"
            )
        entries.setdefault(video_id, (text, line_no))
    return entries, empty, textless


def find_split_dir(root: Path, split: str) -> Path:
    names = SPLIT_DIRS.get(split)
    if names is None:
        raise InvalidValueError(f"unknown How2 split {split!r}; choices: {', '.join(SPLIT_DIRS)}")
    for name in names:
        if (root / name / "tran.tok.txt").is_file():
            return root / name
    raise InputFileError(f"no How2 {split} split in {root}: expected {' or '.join(names)}/tran.tok.txt")


def find_features_dir(root: Path, split_dir: Path) -> Path:
    for candidate in (root / FEATURES_DIR, split_dir / FEATURES_DIR):
        if candidate.is_dir():
            return candidate
    raise InputFileError(f"How2 video features not found: expected {root / FEATURES_DIR}/<video_id>.npy")


@dataclass(frozen=True)
class How2Split:
    examples: list[How2Example]
    features_dir: Path
    report: How2Report


def load_how2_split(
    root: str | Path,
    split: str,
    *,
    features_dir: str | Path | None = None,
    limits: How2Limits | None = None,
    samples: int | None = None,
    seed: int = 0,
    skip_missing: bool = False,
) -> How2Split:
    """Paired, checked examples of one split (subset drawn before the feature check, as for grounding)."""
    root = Path(root)
    limits = limits or How2Limits()
    split_dir = find_split_dir(root, split)
    feats = Path(features_dir) if features_dir is not None else find_features_dir(root, split_dir)
    transcripts, empty_t, textless_t = read_id_text_file(split_dir / "tran.tok.txt")
    summaries, empty_s, textless_s = read_id_text_file(split_dir / "desc.tok.txt")
    examples = [
        How2Example(
            video_id=vid,
            transcript=text,
            summary=summaries[vid][0],
            source=f"{split_dir / 'tran.tok.txt'}:{line} / desc.tok.txt:{summaries[vid][1]}",
        )
        for vid, (text, line) in transcripts.items()
        if vid in summaries
    ]
    # an id whose other line is empty is reported once, as that empty line
    only_t = tuple(sorted(set(transcripts) - set(summaries) - textless_s))
    only_s = tuple(sorted(set(summaries) - set(transcripts) - textless_t))
    if only_t or only_s:
        logger.warning(
            "How2 %s: %d ids lack a summary, %d lack a transcript", split, len(only_t), len(only_s)
        )
    if samples is not None:
        examples = select_subset(examples, samples, seed)
    kept, missing = _check_features(examples, feats, limits.video_dim, skip_missing)
    if not kept:
        raise EmptyDatasetError(
            f"How2 {split} in {split_dir} has no usable pairs ({len(only_t) + len(only_s)} unpaired ids, "
            f"{len(missing)} without features, {len(empty_t) + len(empty_s)} empty lines)"
        )
    report = How2Report(
        split=split,
        pairs_used=len(kept),
        only_transcript=only_t,
        only_summary=only_s,
        empty_lines=tuple(empty_t + empty_s),
        missing_features=tuple(missing),
    )
    return How2Split(examples=kept, features_dir=feats, report=report)


def _check_features(
    examples: list[How2Example], feats: Path, video_dim: int, skip_missing: bool
) -> tuple[list[How2Example], list[str]]:
    kept: list[How2Example] = []
    missing: list[str] = []
    for example in examples:
        path = feats / f"{example.video_id}.npy"
        if not path.is_file():
            missing.append(example.video_id)
            continue
        shape = peek_shape(path, VIDEO_KEY)
        if len(shape) != 2 or shape[0] == 0:
            load_feature_array(path, VIDEO_KEY)  # raises the shared, precise message
        if shape[1] != video_dim:
            raise InputFileError(f"{path}: feature dimension {shape[1]}, expected {video_dim}")
        kept.append(example)
    if missing and not skip_missing:
        first = feats / f"{missing[0]}.npy"
        raise FeatureMissingError(
            kind="video", item_id=f"video {missing[0]}", path=first, total_missing=len(missing)
        )
    return kept, missing


class How2Dataset:
    """Examples + features -> `How2Item`s, video cut to max_video_frames rows."""

    def __init__(self, split: How2Split, limits: How2Limits | None = None) -> None:
        self.examples = split.examples
        self.features_dir = split.features_dir
        self.limits = limits or How2Limits()

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> How2Item:
        example = self.examples[index]
        path = self.features_dir / f"{example.video_id}.npy"
        video = load_feature_array(path, VIDEO_KEY, expected_dim=self.limits.video_dim)  # (T, 2048)
        return How2Item(
            video_id=example.video_id,
            transcript=example.transcript,
            summary=example.summary,
            video=video[: self.limits.max_video_frames],  # (T', 2048)
        )
