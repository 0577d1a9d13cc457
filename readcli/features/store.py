"""Reading and writing feature arrays in the Moment-DETR layout, with validation.

Video: `{vid}.npz`, key `features`, (N_clips, d). Text: `qid{qid}.npz`, key `last_hidden_state`,
(N_tokens, d). Every problem is reported as one line naming the file and what was expected.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from readcli.errors import InputFileError
from readcli.fileio import atomic_write_bytes

VIDEO_KEY = "features"
TEXT_KEY = "last_hidden_state"


def load_feature_array(path: str | Path, key: str, *, expected_dim: int | None = None) -> np.ndarray:
    """Load one 2-d float array (rows, d) from an .npz (by `key`) or .npy file, checked.

    Refuses: a missing or unreadable file, a missing key (naming the keys present), a shape that is
    not 2-d, zero rows, a width other than `expected_dim`, NaN or inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"feature file not found: {path} (give an existing .npz or .npy file)")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                if key not in archive.files:
                    present = ", ".join(archive.files) or "none"
                    raise InputFileError(f"{path}: no key {key!r} (keys present: {present})")
                array = archive[key]
    except InputFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise InputFileError(f"{path}: not a readable numpy feature file ({err})") from None
    return check_feature_array(array, str(path), expected_dim=expected_dim)


def check_feature_array(array: np.ndarray, name: str, *, expected_dim: int | None = None) -> np.ndarray:
    """Validate a (rows, d) feature array and return it as float32."""
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]  # some extractors save (1, N, d)
    if array.ndim != 2:
        raise InputFileError(f"{name}: expected a 2-d array (rows, dim), found shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise InputFileError(f"{name}: has zero rows; a feature file needs at least one row (re-extract it)")
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise InputFileError(f"{name}: feature dimension {array.shape[1]}, expected {expected_dim}")
    if not np.issubdtype(array.dtype, np.number):
        raise InputFileError(f"{name}: expected numbers, found dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputFileError(
            f"{name}: contains {bad} NaN or inf values; every value must be finite (re-extract the features)"
        )
    return array


def save_feature_array(path: str | Path, key: str, array: np.ndarray) -> None:
    """Write `array` under `key` into an .npz atomically."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {key: np.asarray(array, dtype=np.float32)}
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
