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


# Bounds checked from the .npy header before anything is allocated: an hour of 0.5-s clips or a long
# transcript is far below them; a damaged header claiming 10**12 rows is refused, not allocated.
MAX_ROWS = 1_000_000
MAX_WIDTH = 65_536
MAX_ELEMENTS = 2**28  # 1 GiB of float32
# Values beyond this overflow float32 once squared and summed over a row (cosine costs, norms):
# d * x**2 stays below float32's 3.4e38 for d <= 65,536 and |x| <= 1e15.
MAX_MAGNITUDE = 1e15


def load_feature_array(path: str | Path, key: str, *, expected_dim: int | None = None) -> np.ndarray:
    """Load one 2-d float array (rows, d) from an .npz (by `key`) or .npy file, checked.

    Refuses: a missing or unreadable file, a missing key (naming the keys present), a member that
    is not an .npy, a dtype that is not a real float, a shape that is not 2-d or is too large (read
    from the header, before any allocation), zero rows, a width other than `expected_dim`, NaN, inf
    or values too large for float32 arithmetic.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"feature file not found: {path} (give an existing .npz or .npy file)")
    try:
        if path.suffix == ".npy":
            with path.open("rb") as handle:
                array = _read_npy(handle, str(path))
        else:
            with zipfile.ZipFile(path) as archive:
                array = _read_member(archive, key, path)
    except InputFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as err:
        raise InputFileError(f"{path}: not a readable numpy feature file ({err})") from None
    return check_feature_array(array, str(path), expected_dim=expected_dim)


def _read_member(archive: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    names = archive.namelist()
    member = f"{key}.npy"
    if member not in names and key in names:
        raise InputFileError(
            f"{path}: member {key!r} is not an .npy array (numpy.savez stores {member}): "
            "re-save it with numpy"
        )
    if member not in names:
        present = ", ".join(n.removesuffix(".npy") for n in names) or "none"
        raise InputFileError(f"{path}: no key {key!r} (keys present: {present})")
    with archive.open(member) as handle:
        return _read_npy(handle, f"{path} (member {member})")


def _read_npy(handle: Any, name: str) -> np.ndarray:
    """An .npy array whose header (dtype, shape) is checked before its data is read."""
    try:
        version = np.lib.format.read_magic(handle)
    except ValueError:
        raise InputFileError(f"{name}: not an .npy array (no numpy header): re-save it with numpy") from None
    if version not in ((1, 0), (2, 0)):  # 3.0 exists only for structured dtypes with unicode names
        raise InputFileError(f"{name}: .npy format version {version} is not a feature array")
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran, dtype = read_header(handle)
    except Exception as err:  # noqa: BLE001
        # numpy parses the header with ast.literal_eval and, for old files, tokenize: damage raises
        # ValueError, SyntaxError, tokenize.TokenError, ... (the fuzzer found the last two)
        raise InputFileError(
            f"{name}: damaged .npy header ({type(err).__name__}): re-save the array"
        ) from None
    _check_header(shape, dtype, name)
    count = int(np.prod(shape))
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise InputFileError(f"{name}: truncated ({len(data)} of {count * dtype.itemsize} data bytes)")
    array = np.frombuffer(bytearray(data), dtype=dtype, count=count)  # writable: torch warns otherwise
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def _check_header(shape: tuple[int, ...], dtype: np.dtype, name: str) -> None:
    if dtype.kind != "f":
        raise InputFileError(
            f"{name}: dtype {dtype} is not a real floating type: save features as float16, float32 or float64"
        )
    core = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape  # some extractors save (1, N, d)
    if len(core) != 2:
        raise InputFileError(f"{name}: expected a 2-d array (rows, dim), found shape {tuple(shape)}")
    rows, width = core
    if rows > MAX_ROWS or width > MAX_WIDTH or rows * width > MAX_ELEMENTS:
        raise InputFileError(
            f"{name}: shape {tuple(shape)} is too large for a feature file (at most {MAX_ROWS:,} rows, "
            f"{MAX_WIDTH:,} columns and {MAX_ELEMENTS:,} values)"
        )


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
    if array.dtype.kind != "f":  # complex would lose its imaginary part, strings and objects are no numbers
        raise InputFileError(
            f"{name}: dtype {array.dtype} is not a real floating type: save features as float16, float32 "
            "or float64"
        )
    finite = np.isfinite(array)  # in the file's own dtype: no cast, so no overflow warning
    if not finite.all():
        bad = int((~finite).sum())
        raise InputFileError(
            f"{name}: contains {bad} NaN or inf values; every value must be finite (re-extract the features)"
        )
    largest = float(np.abs(array).max())
    if largest > MAX_MAGNITUDE:
        raise InputFileError(
            f"{name}: holds a value of magnitude {largest:.3g}; feature values must lie within "
            f"+-{MAX_MAGNITUDE:g} (larger ones overflow float32 arithmetic: re-extract or rescale them)"
        )
    return array.astype(np.float32, copy=False)


def save_feature_array(path: str | Path, key: str, array: np.ndarray) -> None:
    """Write `array` under `key` into an .npz atomically."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {key: np.asarray(array, dtype=np.float32)}
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
