"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Write to a temporary file in the same directory, fsync, `os.replace` (atomic on POSIX), then fsync the
directory so the rename itself survives a power cut. A failure (a full disk, a kill) leaves the
previous file intact; a failure readcli sees also removes the temporary (a SIGKILL can leave a hidden
`.NAME.*.tmp`, which no reader looks at). Errors writing the output (no space, read-only, no
permission) become one-line `OutputFileError`s. A new file gets the mode any other program would
give it, 0666 less the umask (mkstemp creates 0600, which labmates could not read). docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from readcli.errors import InputFileError, InvalidValueError, OutputFileError

# errno values that mean "this output cannot be written here", with what the user can do about it
_WRITE_FAILURES = {
    errno.ENOSPC: "no space left on the device: free some space and run again",
    errno.EDQUOT: "disk quota exceeded: free some space and run again",
    errno.EFBIG: "the file is too large for this file system: write it elsewhere",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a writable folder",
    errno.EPERM: "permission denied: choose a writable folder",
    errno.EIO: "input/output error on the device: check the disk and run again",
}


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system tells (Linux: /proc/self/status);
    elsewhere set and restored at once under a lock (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the strictest mask for the instant it is set
        os.umask(mask)
    return mask


def umask_mode(*, directory: bool = False) -> int:
    """The mode open()/mkdir() would give a new file (0666) or folder (0777) under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def honour_umask(path: str | os.PathLike[str] | int, *, directory: bool = False) -> None:
    """Give a file made by mkstemp/mkdtemp (0600/0700) the umask's mode; `path` may be an open fd."""
    mode = umask_mode(directory=directory)
    if isinstance(path, int):
        if hasattr(os, "fchmod"):  # not on Windows, where modes do not apply
            os.fchmod(path, mode)
    else:
        os.chmod(path, mode)


def _open_temp(fd: int) -> BinaryIO:
    """The one place bytes of an output reach the disk (tests simulate a full disk here)."""
    return os.fdopen(fd, "wb")


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_failure(target: Path, err: OSError) -> OutputFileError | None:
    """The one-line error for an OSError met while writing `target`, or None if it is not about writing."""
    reason = _WRITE_FAILURES.get(err.errno or 0)
    if reason is None:
        return None
    return OutputFileError(
        f"cannot write {target}: {reason} (the previous {target.name}, if any, is unchanged)"
    )


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file beside `path`; on success it replaces `path` atomically."""
    target = Path(path)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputFileError(
            f"cannot write {target}: {directory} exists and is not a directory; choose a folder path"
        ) from None
    except OSError as err:
        raise write_failure(target, err) or err from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except PermissionError:
        raise OutputFileError(
            f"cannot write {target}: {directory} is not writable; choose a writable folder"
        ) from None
    except OSError as err:
        raise write_failure(target, err) or err from None
    tmp = Path(tmp_name)
    try:
        # before the rename, so the file appears with its final mode; a file system without modes
        # (FAT, some network mounts) keeps mkstemp's
        with contextlib.suppress(OSError):
            honour_umask(fd)
        with _open_temp(fd) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_failure(target, err) or err from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def atomic_replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename a complete file over `target` in one step (same folder), durably."""
    os.replace(source, target)
    fsync_directory(Path(target).parent)


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


def _probe_writable(directory: Path, target: Path, option: str) -> None:
    """Create and remove a hidden temporary in `directory`: the one test that holds for root, read-only
    file systems and ACLs alike (os.access says yes to root)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        reason = (
            "is not writable" if isinstance(err, PermissionError) else f"cannot be written ({err.strerror})"
        )
        raise OutputFileError(
            f"cannot write {option} {target}: {directory} {reason}; choose a writable folder"
        ) from None
    os.close(fd)
    Path(name).unlink(missing_ok=True)


def check_output_file(path: str | os.PathLike[str], option: str) -> Path:
    """Refuse an output file that cannot be written, before any work: a directory, a path under a
    file, a folder (or, when missing, its nearest existing ancestor) that is not writable. Nothing is
    created or changed."""
    target = Path(path)
    if target.is_dir():
        raise InvalidValueError(f"{option} {target} is a directory: give a file path")
    _check_writable_below(target.parent, target, option)  # missing folders are made with the file
    return target


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """Refuse an output folder that cannot be written, before any work: a file, or a folder (or, when
    it does not exist yet, its nearest existing ancestor) that is not writable. Nothing is created."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InvalidValueError(f"{option} {target} is a file: give a folder (it is created if missing)")
    _check_writable_below(target, target, option)
    return target


def _check_writable_below(folder: Path, target: Path, option: str) -> None:
    """`folder`, or its nearest existing ancestor when it is missing, must be a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidValueError(f"{option} {target}: {existing} is not a folder; choose a path in a folder")
    _probe_writable(existing, target, option)
