"""Feature files on disk -> model input arrays, following the official Moment-DETR data pipeline.

Dimension letters: N_V video clips, N_L text tokens, D_s one stream's width, D_v video input width
(streams + TEF), D_t text width, D_A audio width.

Video: every stream `{dir}/{vid}.npz` (key `features`, one row per clip) and the optional audio
`audio_features/{vid}.npz` are cut to one clip count N_V = min(every stream's rows, audio rows,
max_v_l, labelled clips) (UMT's `num_clips = min(video, audio, saliency)`), L2-normalised per row
where the spec says so, the video streams concatenated in the declared order, and the 2-d temporal
endpoint feature appended when enabled. Text: `qid{qid}.npz` (key `last_hidden_state`) is cut to
max_q_l tokens and L2-normalised when enabled. Every file is read through `load_feature_array`.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from readcli.data.annotations import MomentAnnotation
from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.errors import FeatureMissingError, InputFileError, InvalidValueError
from readcli.features.store import TEXT_KEY, VIDEO_KEY, load_feature_array

L2_EPS = 1e-5  # the official `l2_normalize_np_array` adds this to the norm


def l2_normalize(array: np.ndarray) -> np.ndarray:
    """Each row divided by (its L2 norm + 1e-5), as the official pipeline does."""
    norms = np.linalg.norm(array, axis=-1, keepdims=True)  # (N, 1)
    return (array / (norms + L2_EPS)).astype(np.float32)  # (N, D)


def temporal_endpoint_feature(num_clips: int) -> np.ndarray:
    """(N_V, 2) rows [i/N_V, (i+1)/N_V]: where each clip starts and ends, as a fraction of the video."""
    start = np.arange(num_clips, dtype=np.float32) / num_clips  # (N_V,)
    return np.stack([start, start + np.float32(1.0 / num_clips)], axis=1)  # (N_V, 2)


def _prepare_stream(array: np.ndarray, stream: StreamSpec, length: int) -> np.ndarray:
    array = array[:length]  # (N_V, D_s)
    return l2_normalize(array) if stream.l2_normalize else array.astype(np.float32)


def assemble_clips(
    streams: Sequence[np.ndarray],
    spec: VideoFeatureSpec,
    *,
    audio: np.ndarray | None = None,
    num_clips: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-stream (N_s, D_s) arrays in spec order (+ audio (N_a, D_A)) -> (N_V, D_v), (N_V, D_A) or None.

    N_V = min(every stream's rows, audio rows, max_v_l, num_clips): extractors differ by a clip, and
    `num_clips` is how many clips the labels cover (highlight datasets), so features, audio and
    targets line up as UMT's loader does; the TEF is computed over the final N_V.
    """
    if (audio is None) != (spec.audio is None):
        raise InvalidValueError(
            "audio features and the feature spec disagree: "
            f"{'no audio array' if audio is None else 'an audio array'} for a spec "
            f"{'without' if spec.audio is None else 'with'} audio"
        )
    lengths = [len(a) for a in streams] + ([len(audio)] if audio is not None else [])
    length = min(lengths + [n for n in (spec.max_v_l, num_clips) if n is not None])
    cut = [_prepare_stream(a, s, length) for a, s in zip(streams, spec.streams, strict=True)]
    video = np.concatenate(cut, axis=1)  # (N_V, sum D_s)
    if spec.tef:
        video = np.concatenate([video, temporal_endpoint_feature(length)], axis=1)  # (N_V, D_v)
    if audio is None or spec.audio is None:
        return video, None
    return video, _prepare_stream(audio, spec.audio, length)  # (N_V, D_v), (N_V, D_A)


def assemble_video(
    streams: Sequence[np.ndarray], spec: VideoFeatureSpec, *, num_clips: int | None = None
) -> np.ndarray:
    """Per-stream (N_s, D_s) arrays in spec order -> (N_V, D_v) model input (a spec without audio)."""
    video, _ = assemble_clips(streams, replace(spec, audio=None), num_clips=num_clips)
    return video  # (N_V, D_v)


def prepare_text(array: np.ndarray, spec: VideoFeatureSpec) -> np.ndarray:
    """(N_tokens, D_t) -> (N_L, D_t): cut to max_q_l tokens, L2-normalised when the spec says so."""
    array = array[: spec.max_q_l] if spec.max_q_l is not None else array  # (N_L, D_t)
    return l2_normalize(array) if spec.normalize_text else array.astype(np.float32)


@dataclass(frozen=True)
class FeatureSources:
    """Where the feature files are: one directory per video stream (in order), text, optional audio."""

    video_dirs: tuple[tuple[str, Path], ...]
    text_dir: Path
    text_key: str = TEXT_KEY
    audio_dir: Path | None = None  # `{vid}.npz` (key `features`) or `{vid}.npy`, one row per clip

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.video_dirs)

    def video_path(self, directory: Path, vid: str) -> Path:
        """`{vid}.npz`, or `{vid}.npy` when only that exists."""
        path = directory / f"{vid}.npz"
        if not path.is_file() and (directory / f"{vid}.npy").is_file():
            return directory / f"{vid}.npy"
        return path

    def text_path(self, ann: MomentAnnotation) -> Path:
        """`qid{qid}.npz`; else `{qid}.npz`; else `domain_{domain}.npz` (a query shared by a domain)."""
        candidates = [self.text_dir / f"qid{ann.qid}.npz", self.text_dir / f"{ann.qid}.npz"]
        if ann.domain is not None:
            candidates.append(self.text_dir / f"domain_{ann.domain}.npz")
        return next((p for p in candidates if p.is_file()), candidates[0])


def peek_shape(path: Path, key: str) -> tuple[int, ...]:
    """The array's shape from its header alone (cheap for thousands of files); errors name the file."""
    try:
        if path.suffix == ".npy":
            with path.open("rb") as handle:
                return _header_shape(handle)
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as handle:
            return _header_shape(handle)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        # let the shared loader produce its precise message (missing key, not an npz, ...)
        return tuple(load_feature_array(path, key).shape)


def _header_shape(handle: object) -> tuple[int, ...]:
    fmt = np.lib.format
    version = fmt.read_magic(handle)  # type: ignore[arg-type]
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    raw_shape, _, _ = read_header(handle)  # type: ignore[arg-type]
    shape = tuple(int(n) for n in raw_shape)
    return shape[1:] if len(shape) == 3 and shape[0] == 1 else shape  # (1, N, d) files are accepted too


@dataclass
class FeatureScan:
    """What a scan of every needed feature file found: widths, and rows whose files are missing."""

    video_dims: dict[str, int] = field(default_factory=dict)
    text_dim: int | None = None
    audio_dim: int | None = None  # None: no audio directory (or no row scanned)
    missing: list[tuple[MomentAnnotation, FeatureMissingError]] = field(default_factory=list)


class _WidthCheck:
    """The first file fixes a width (unless declared); every later file must match it."""

    def __init__(self, label: str, declared: int | None) -> None:
        self.label, self.width, self.origin = label, declared, "as declared by the manifest or bundle"

    def check(self, path: Path, key: str) -> None:
        shape = peek_shape(path, key)
        if len(shape) != 2 or shape[0] == 0:
            load_feature_array(path, key)  # raises the shared, precise message
        if self.width is None:
            self.width, self.origin = shape[1], f"as in {path}"
        elif shape[1] != self.width:
            raise InputFileError(
                f"{path}: {self.label} feature dimension {shape[1]}, expected {self.width} ({self.origin})"
            )


def scan_features(
    annotations: Iterable[MomentAnnotation],
    sources: FeatureSources,
    *,
    declared_video_dims: dict[str, int] | None = None,
    declared_text_dim: int | None = None,
    declared_audio_dim: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> FeatureScan:
    """Check that every row's files exist and agree in width, reading headers only."""
    declared = declared_video_dims or {}
    video_checks = {
        name: _WidthCheck(f"video stream {name!r}", declared.get(name)) for name in sources.stream_names
    }
    audio_check = _WidthCheck("audio", declared_audio_dim) if sources.audio_dir is not None else None
    text_check = _WidthCheck("text", declared_text_dim)
    scan = FeatureScan()
    checked_vids: set[str] = set()
    for index, ann in enumerate(annotations):
        problem = _check_row(ann, sources, video_checks, audio_check, text_check, checked_vids)
        if problem is not None:
            scan.missing.append((ann, problem))
        if progress is not None:
            progress(index + 1)
    scan.video_dims = {n: c.width for n, c in video_checks.items() if c.width is not None}
    scan.text_dim = text_check.width
    scan.audio_dim = audio_check.width if audio_check is not None else None
    return scan


def _check_row(
    ann: MomentAnnotation,
    sources: FeatureSources,
    video_checks: dict[str, _WidthCheck],
    audio_check: _WidthCheck | None,
    text_check: _WidthCheck,
    checked_vids: set[str],
) -> FeatureMissingError | None:
    if ann.vid not in checked_vids:
        for name, directory in sources.video_dirs:
            path = sources.video_path(directory, ann.vid)
            if not path.is_file():
                return FeatureMissingError(kind=f"video ({name})", item_id=f"vid {ann.vid}", path=path)
            video_checks[name].check(path, VIDEO_KEY)
        if sources.audio_dir is not None and audio_check is not None:
            path = sources.video_path(sources.audio_dir, ann.vid)
            if not path.is_file():
                return FeatureMissingError(kind="audio", item_id=f"vid {ann.vid}", path=path)
            audio_check.check(path, VIDEO_KEY)
        checked_vids.add(ann.vid)
    text_path = sources.text_path(ann)
    if not text_path.is_file():
        return FeatureMissingError(kind="text", item_id=f"qid {ann.qid}", path=text_path)
    text_check.check(text_path, sources.text_key)
    return None


class FeatureReader:
    """Loads model-ready arrays, caching a few videos (QVHighlights asks several queries per video)."""

    def __init__(self, sources: FeatureSources, spec: VideoFeatureSpec, *, cache_videos: int = 64) -> None:
        if sources.stream_names != spec.stream_names:
            raise InputFileError(
                f"feature directories [{', '.join(sources.stream_names)}] do not match the spec's streams "
                f"[{', '.join(spec.stream_names)}]"
            )
        if (sources.audio_dir is None) != (spec.audio is None):
            where = sources.audio_dir or "no audio directory"
            raise InputFileError(
                f"audio features ({where}) do not match the spec, which "
                f"{'has no audio stream' if spec.audio is None else 'needs one'}"
            )
        self.sources = sources
        self.spec = spec
        self._cache: OrderedDict[tuple[str, int | None], tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._cache_size = cache_videos

    def video(self, vid: str, *, num_clips: int | None = None) -> np.ndarray:
        """(N_V, D_v) float32 for one video (see `assemble_clips` for N_V)."""
        return self.clips(vid, num_clips=num_clips)[0]

    def clips(self, vid: str, *, num_clips: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N_V, D_v) video and (N_V, D_A) audio (None without audio) for one video, one clip count."""
        key = (vid, num_clips)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pairs = zip(self.spec.streams, self.sources.video_dirs, strict=True)
        arrays = [self._stream(stream, directory, vid) for stream, (_, directory) in pairs]
        audio = None
        if self.spec.audio is not None and self.sources.audio_dir is not None:
            audio = self._stream(self.spec.audio, self.sources.audio_dir, vid)  # (N_a, D_A)
        video, audio = assemble_clips(arrays, self.spec, audio=audio, num_clips=num_clips)
        for array in (video, audio):
            if array is not None:
                array.flags.writeable = False  # shared by every query on this video
        self._cache[key] = (video, audio)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return video, audio

    def text(self, ann: MomentAnnotation) -> np.ndarray:
        """(N_L, D_t) float32 for one query."""
        path = self.sources.text_path(ann)
        if not path.is_file():
            raise FeatureMissingError(kind="text", item_id=f"qid {ann.qid}", path=path)
        array = load_feature_array(path, self.sources.text_key, expected_dim=self.spec.text_dim)
        return prepare_text(array, self.spec)

    def _stream(self, stream: StreamSpec, directory: Path, vid: str) -> np.ndarray:
        path = self.sources.video_path(directory, vid)
        if not path.is_file():
            kind = "audio" if directory == self.sources.audio_dir else f"video ({stream.name})"
            raise FeatureMissingError(kind=kind, item_id=f"vid {vid}", path=path)
        return load_feature_array(path, VIDEO_KEY, expected_dim=stream.dim)  # (N_s, D_s)
