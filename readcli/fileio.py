"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Write to a temporary file in the same directory, fsync, then `os.replace` (atomic on POSIX). A
failure (a full disk, a kill) leaves the previous file intact and removes the temporary.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from readcli.errors import InputFileError


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file beside `path`; on success it replaces `path` atomically."""
    target = Path(path)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputFileError(f"cannot write {target}: {directory} exists and is not a directory") from None
    except PermissionError:
        raise InputFileError(f"cannot write {target}: {directory} is not writable") from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except PermissionError:
        raise InputFileError(f"cannot write {target}: {directory} is not writable") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Strict JSON: NaN and infinities (e.g. a metric over an empty bucket) are written as null."""
    text = json.dumps(finite_or_null(obj), indent=indent, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def finite_or_null(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON null), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_null(value) for value in obj]
    return obj


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[BinaryIO], None]) -> None:
    """Let `writer` fill the file (e.g. `np.savez` into a handle), then publish it atomically."""
    with atomic_open(path) as handle:
        writer(handle)


def cache_dir() -> Path:
    """readcli's cache folder: $READCLI_CACHE, else $XDG_CACHE_HOME/readcli, else ~/.cache/readcli."""
    explicit = os.environ.get("READCLI_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "readcli"
