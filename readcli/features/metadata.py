"""The metadata JSON written beside every feature file, and the resume test built on it.

A feature file is reused only when its metadata records the same settings (model, weights digest,
activation, clip length and rule, preprocessing, normalisation), the same source file (size and
mtime), and the sha256 of the very array in the .npz beside it. The last check makes a pair written
by two runs with different settings (each file atomic, the pair not) count as stale, never as valid.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from readcli import __version__
from readcli.errors import InputFileError
from readcli.features.clip_encoder import EncoderSpec
from readcli.features.clips import CLIP_RULE, ClipPlan
from readcli.features.store import TEXT_KEY, VIDEO_KEY, load_feature_array
from readcli.records import read_json_file

FORMAT = "readcli-features"
FORMAT_VERSION = 1
PREPROCESS = "resize shortest side to {size} (PIL bicubic, antialiased), centre crop {size}x{size}"


def array_sha256(array: np.ndarray) -> str:
    """Digest of a float32 array's bytes and shape (what the .npz holds)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    digest = hashlib.sha256(str(array.shape).encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()


def source_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def settings(spec: EncoderSpec, *, kind: str, clip_len: float | None = None) -> dict[str, Any]:
    """Everything the features depend on besides the input; two runs match when these are equal."""
    out: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model": spec.model,
        "weights": spec.weights,
        "weights_sha256": spec.weights_sha256,
        "quick_gelu": spec.quick_gelu,
    }
    if kind == "video":
        out["clip_len"] = clip_len
        out["clip_rule"] = CLIP_RULE
        out["preprocess"] = PREPROCESS.format(size=spec.image_size)
        out["normalisation"] = {
            "pixel_mean": list(spec.mean),
            "pixel_std": list(spec.std),
            "features": "none (raw CLIP embeddings; L2-normalise when loading, as Moment-DETR does)",
        }
    else:
        out["tokens"] = "SOT..EOT inclusive, ln_final output before the text projection"
        out["normalisation"] = {"features": "none (L2-normalise when loading, as Moment-DETR does)"}
    return out


def video_metadata(spec: EncoderSpec, plan: ClipPlan, source: Path, features: np.ndarray) -> dict[str, Any]:
    return {
        **settings(spec, kind="video", clip_len=plan.clip_len),
        "readcli_version": __version__,
        "encoder": asdict(spec),
        "source": source_fingerprint(source),
        "fps": plan.fps,
        "n_frames": plan.n_frames,
        "duration": plan.duration,
        "clips": plan.n_clips,
        "frame_indices": list(plan.frame_indices),
        "key": VIDEO_KEY,
        "shape": list(features.shape),
        "features_sha256": array_sha256(features),
    }


def query_metadata(
    spec: EncoderSpec, qid: str, query: str, features: np.ndarray, dropped: int
) -> dict[str, Any]:
    return {
        **settings(spec, kind="text"),
        "readcli_version": __version__,
        "qid": qid,
        "query": query,
        "query_sha256": hashlib.sha256(query.encode("utf-8")).hexdigest(),
        "truncated_word_pieces": dropped,
        "key": TEXT_KEY,
        "shape": list(features.shape),
        "features_sha256": array_sha256(features),
    }


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The metadata dict, or None when absent or unreadable (then the features are made again)."""
    try:
        data = read_json_file(path)  # bounded nesting
    except (OSError, ValueError, InputFileError):
        return None
    return data if isinstance(data, dict) else None


def is_current(
    meta_path: Path,
    npz_path: Path,
    key: str,
    wanted: dict[str, Any],
    *,
    source: Path | None = None,
    query: str | None = None,
) -> bool:
    """True when `npz_path` holds features made with `wanted` settings from this source or query."""
    meta = read_metadata(meta_path)
    if meta is None or any(meta.get(k) != v for k, v in wanted.items()):
        return False
    if source is not None:
        recorded = meta.get("source") or {}
        now = source_fingerprint(source)
        if recorded.get("size") != now["size"] or recorded.get("mtime_ns") != now["mtime_ns"]:
            return False
    if query is not None and meta.get("query_sha256") != hashlib.sha256(query.encode("utf-8")).hexdigest():
        return False
    if not os.path.isfile(npz_path):
        return False
    try:
        array = load_feature_array(npz_path, key)
    except InputFileError:
        return False
    return bool(meta.get("features_sha256") == array_sha256(array))
