"""A content-addressed cache of per-clip CLIP video features, so `readcli ground` extracts a video once.

Key: sha256 over the video file's content digest and every extraction setting (model, weights
digest, activation, clip length and rule, preprocessing, normalisation: `metadata.settings`). The
content digest is `weights.file_sha256`, itself remembered by (path, size, mtime), so a re-run does
not re-read the video; a renamed or copied file hashes to the same entry. Entries live in
`<cache>/features/<key[:2]>/<key>.npz` with the extractor's metadata JSON beside it, each written
atomically, the array first; an entry whose JSON does not vouch for its array (settings or array
digest) is a miss and is rewritten. `<cache>` is readcli's `fileio.cache_dir()`
($READCLI_CACHE, else $XDG_CACHE_HOME/readcli, else ~/.cache/readcli). docs/ground.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from readcli.errors import InputFileError
from readcli.features.clip_encoder import ClipEncoder, EncoderSpec
from readcli.features.extractor import VideoFailed, extract_videos
from readcli.features.metadata import array_sha256, read_metadata, settings, video_metadata
from readcli.features.store import VIDEO_KEY, load_feature_array, save_feature_array
from readcli.features.weights import file_sha256
from readcli.fileio import atomic_write_json, cache_dir

log = logging.getLogger(__name__)

SUBDIR = "features"

ProgressFn = Callable[[int, int], None]  # (clips done, clips in the video)


def default_root() -> Path:
    """<cache>/features, with <cache> as the backbone presets use it."""
    return cache_dir() / SUBDIR


@dataclass(frozen=True)
class CachedVideo:
    """One video's raw per-clip features and the timing facts of its clip plan."""

    features: np.ndarray  # (C, D) float32, not normalised
    duration: float  # seconds
    clip_len: float
    fps: float
    key: str
    hit: bool  # True when read from the cache, False when extracted by this call

    @property
    def n_clips(self) -> int:
        return int(self.features.shape[0])


def cache_key(content_sha256: str, spec: EncoderSpec, clip_len: float) -> str:
    """sha256 of the content digest and the extraction settings (canonical JSON)."""
    payload = {"content_sha256": content_sha256, "settings": settings(spec, kind="video", clip_len=clip_len)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FeatureCache:
    """Get a video's features from the cache, or extract and store them (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npz", folder / f"{key}.json"

    def load(self, key: str, spec: EncoderSpec, clip_len: float) -> CachedVideo | None:
        """The entry for `key` when its metadata vouches for it, else None (a miss)."""
        npz, meta_path = self.paths(key)
        meta = read_metadata(meta_path)
        if meta is None or not npz.is_file():
            return None
        wanted = settings(spec, kind="video", clip_len=clip_len)
        if any(meta.get(k) != v for k, v in wanted.items()):
            return None
        try:
            features = load_feature_array(npz, VIDEO_KEY, expected_dim=spec.image_dim)
            facts = (float(meta["duration"]), float(meta["fps"]))
        except (InputFileError, KeyError, TypeError, ValueError) as err:
            log.warning("feature cache entry %s is unreadable (%s); extracting again", npz, err)
            return None
        if meta.get("features_sha256") != array_sha256(features):
            log.warning("feature cache entry %s does not match its metadata; extracting again", npz)
            return None
        return CachedVideo(features, facts[0], clip_len, facts[1], key, hit=True)

    def get(
        self,
        video: str | Path,
        encoder: ClipEncoder,
        *,
        clip_len: float,
        batch_size: int = 32,
        progress: ProgressFn | None = None,
    ) -> CachedVideo:
        """Features of `video` for `encoder` at `clip_len`: cached, or extracted now and cached."""
        path = Path(video)
        if not path.is_file():
            what = "is a directory, not a video file" if path.is_dir() else "video file not found"
            raise InputFileError(f"{path}: {what}")
        key = cache_key(file_sha256(path), encoder.spec, clip_len)
        cached = self.load(key, encoder.spec, clip_len)
        if cached is not None:
            log.info("feature cache hit for %s (%s)", path, key[:12])
            return cached
        return self._extract(path, key, encoder, clip_len, batch_size, progress)

    def _extract(
        self,
        path: Path,
        key: str,
        encoder: ClipEncoder,
        clip_len: float,
        batch_size: int,
        progress: ProgressFn | None,
    ) -> CachedVideo:
        def on_progress(index: int, done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)

        (item,) = list(
            extract_videos([path], encoder, clip_len=clip_len, batch_size=batch_size, progress=on_progress)
        )
        if isinstance(item, VideoFailed):
            raise InputFileError(item.reason)
        npz, meta_path = self.paths(key)
        meta: dict[str, Any] = video_metadata(encoder.spec, item.plan, path, item.features)
        try:  # the array first, then the metadata that vouches for it
            save_feature_array(npz, VIDEO_KEY, item.features)
            atomic_write_json(meta_path, {**meta, "cache_key": key})
        except (OSError, InputFileError) as err:  # a read-only cache costs a re-extraction next time
            log.warning("cannot write the feature cache entry %s: %s", npz, err)
        return CachedVideo(item.features, item.plan.duration, clip_len, item.plan.fps, key, hit=False)
