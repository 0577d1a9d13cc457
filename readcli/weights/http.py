"""Fetching one file over HTTP(S) with resume: a `.part` file beside the target grows until complete.

A second call after an interruption asks only for the missing bytes (`Range: bytes=N-`); a server
that ignores the range (200) restarts the file from zero. The part file is locked while a process
writes it, so two downloads of the same file cannot interleave. When the bytes are complete they
are checked against the card's digests: a mismatch deletes them (nothing is kept, the next call
starts afresh); a match is fsynced and renamed onto the target in one step (`fileio.atomic_replace`),
so a reader never sees half a file. Plain `urllib` (proxies from the environment, redirects followed).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from readcli import __version__
from readcli.errors import OfflineError, ReadcliError
from readcli.fileio import atomic_replace, write_failure
from readcli.weights.catalog import WeightFile
from readcli.weights.digest import verify

TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

Progress = Callable[[int, int | None], None]  # (bytes on disk, total bytes or None)


class DownloadError(ReadcliError):
    """A transfer that failed or a file whose digest differs from its card; the message says what to do."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    resumed_from: int  # bytes already on disk when this call started (0: a fresh transfer)
    checked: str  # the digests verified ("" when the card records none)


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def fetch(entry: WeightFile, target: Path, *, progress: Progress | None = None, retry: str = "") -> Fetched:
    """Download `entry.fetch_url()` to `target` (resuming a `.part`), verify, publish atomically.

    `retry`: the command that resumes, named in the message of an interrupted transfer.
    """
    url = entry.fetch_url()
    part = part_path(target)
    made_dir = not target.parent.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = part.open("ab")
    except OSError as err:
        raise write_failure(target, err) or DownloadError(f"cannot write {part}: {err.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(f"{part} is being written by another readcli download; wait for it") from None
        start = handle.tell()
        try:
            _transfer(url, handle, start, progress, retry or "the same command")
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            if handle.tell() == 0:  # nothing worth resuming
                part.unlink(missing_ok=True)
                _drop_empty(target.parent, made_dir)
            raise
    verdict = verify(part, entry, cached=False)
    if not verdict.ok:
        part.unlink(missing_ok=True)
        _drop_empty(target.parent, made_dir)
        raise DownloadError(
            f"{url}: the downloaded file has {verdict.problem}; deleted, nothing kept (the server sent "
            f"another file, or it was damaged on the way)"
        )
    atomic_replace(part, target)
    return Fetched(target, start, verdict.checked)


def _drop_empty(directory: Path, made: bool) -> None:
    if made:
        with contextlib.suppress(OSError):  # not empty: another file lives there
            directory.rmdir()


def _open(url: str, start: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"readcli/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (http(s) from cards)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # the part already holds every byte (or the file changed)
            raise _RangeNotSatisfiable(err.headers.get("Content-Range", "")) from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise OfflineError(f"cannot reach {url} ({_reason(err.reason)})") from None
    except (TimeoutError, ConnectionError) as err:
        raise OfflineError(f"cannot reach {url} ({_reason(err)})") from None
    if not isinstance(response, http.client.HTTPResponse):
        raise DownloadError(f"{url}: not an HTTP(S) URL")
    return response


class _RangeNotSatisfiable(Exception):
    def __init__(self, content_range: str) -> None:
        super().__init__(content_range)
        self.content_range = content_range


def _transfer(url: str, handle: BinaryIO, start: int, progress: Progress | None, retry: str) -> None:
    """Append the bytes after `start` to `handle` (restarting when the server ignores the range)."""
    try:
        response = _open(url, start)
    except _RangeNotSatisfiable as err:
        match = re.fullmatch(r"bytes \*/(\d+)", err.content_range.strip())
        if match and int(match.group(1)) == start:
            return  # complete already; the digest check decides whether it is the right file
        handle.seek(0)
        handle.truncate()
        start = 0
        response = _open(url, 0)
    with response:
        total = _expected_total(response, start)
        if response.status == 200 and start:  # the server ignored the range: start over
            handle.seek(0)
            handle.truncate()
        written = handle.tell()
        try:
            for block in iter(lambda: response.read(_CHUNK), b""):
                handle.write(block)
                written += len(block)
                if progress is not None:
                    progress(written, total)
        except OSError as err:  # a full disk is the disk's fault; a reset connection is resumable
            raise write_failure(Path(handle.name), err) or _interrupted(
                url, written, total, retry, err
            ) from None
        except http.client.HTTPException as err:  # IncompleteRead: the server closed mid-body
            raise _interrupted(url, written, total, retry, err) from None
    if total is not None and written < total:
        raise _interrupted(url, written, total, retry, None)


def _expected_total(response: http.client.HTTPResponse, start: int) -> int | None:
    """The whole file's size in bytes, from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        match = _RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != start:
            raise DownloadError(f"{response.url}: the server answered the range request with another range")
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _interrupted(
    url: str, written: int, total: int | None, retry: str, err: BaseException | None
) -> DownloadError:
    why = f" ({_reason(err)})" if err is not None else ""
    of = f" of {total:,}" if total is not None else ""
    return DownloadError(
        f"{url}: the transfer stopped after {written:,}{of} bytes{why}; the bytes are kept: run {retry} "
        "again to resume"
    )


def _reason(err: object) -> str:
    text = " ".join(str(err).split())
    return (text or type(err).__name__)[:160]
