"""Opening videos with decord and reading the frames a clip plan asks for, in bounded chunks.

decord reports a bad file in several ways (RuntimeError, decord.DECORDError, an AssertionError on a
zero frame count); every one becomes an InputFileError whose message says why, in one line. Native
messages (ffmpeg's, decord's) printed while a file opens are captured and used as that reason rather
than left on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from readcli.errors import InputFileError
from readcli.features.clips import ClipPlan, plan_clips

log = logging.getLogger(__name__)

# Full-resolution RGB frames held at once while decoding (the rest of the pipeline holds 224² crops).
FRAME_BUDGET_BYTES = 4 * 2**20

_FD_LOCK = threading.Lock()
_FFMPEG_LINE = re.compile(
    r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*(.*)$"
)  # "[mov,mp4,... @ 0x55d0] moov atom not found"
_DECORD_PREFIX = re.compile(r"^\[[\d:]+\]\s*\S+\.(?:cc|h):\d+:\s*")  # "[14:17:06] /src/x.cc:83: "


@dataclass(frozen=True)
class OpenVideo:
    """A decord reader with the facts the clip rule needs."""

    path: Path
    reader: Any  # decord.VideoReader (untyped library)
    plan: ClipPlan
    height: int
    width: int


def _decode_errors() -> tuple[type[BaseException], ...]:
    import decord

    return (RuntimeError, decord.DECORDError, AssertionError, ValueError, IndexError)


@contextlib.contextmanager
def _captured_native_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the block; yield the list its lines land in.

    The C++ side of decord writes straight to fd 2, past Python's sys.stderr. Held only while a file
    opens (milliseconds); anything another thread writes to fd 2 in that window is captured too.
    """
    lines: list[str] = []
    with _FD_LOCK, tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (some embedded interpreters): nothing to capture
            yield lines
            return
        try:
            os.dup2(sink.fileno(), 2)
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _native_reason(lines: list[str], err: BaseException) -> str:
    """ffmpeg's and decord's own words for the failure, without timestamps and source paths."""
    messages: list[str] = []
    for line in lines:
        ffmpeg = _FFMPEG_LINE.match(line)
        if ffmpeg:
            text = ffmpeg.group(1)
        else:
            text = _DECORD_PREFIX.sub("", line)
            if text.startswith("ERROR opening:"):
                text = text.rsplit(",", 1)[-1]  # decord appends ffmpeg's reason after the path
        text = text.strip().rstrip(".")
        if text and text not in messages:
            messages.append(text)
    if not messages:
        text = _DECORD_PREFIX.sub("", " ".join(str(err).split())).strip()
        messages.append(text or type(err).__name__)
    return "; ".join(messages)[:300]


def _reason(err: BaseException, native: list[str]) -> str:
    if any("wanted index: -1" in text for text in [str(err), *native]):
        return "it has no video stream (it holds only audio or data): give a file with video frames"
    return (
        f"not a readable video ({_native_reason(native, err)}): give a complete video file ffmpeg can "
        "decode (e.g. .mp4, .mkv, .webm)"
    )


def open_video(path: str | Path, *, clip_len: float, num_threads: int = 0) -> OpenVideo:
    """Open `path` with decord and plan its clips; an unreadable file raises InputFileError."""
    import decord

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file (0 bytes): give a complete video file")
    errors = _decode_errors()
    decord.logging.set_level(decord.logging.ERROR)
    native: list[str] = []
    try:
        with _captured_native_stderr() as native:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
            n_frames = len(reader)
            fps = float(reader.get_avg_fps())
            timestamps = np.asarray(reader.get_frame_timestamp(np.arange(n_frames)))
            height, width = (int(s) for s in reader[0].shape[:2])
            reader.seek(0)
    except errors as err:
        raise InputFileError(f"{path}: {_reason(err, native)}") from None
    finally:
        # Damaged streams make ffmpeg print a line per broken macroblock while decoding; keep quiet.
        decord.logging.set_level(decord.logging.QUIET)
    if native:
        log.debug("%s: native messages while opening: %s", path, " | ".join(native))
    plan = plan_clips(n_frames, fps, clip_len, timestamps=timestamps)
    return OpenVideo(path=path, reader=reader, plan=plan, height=height, width=width)


def iter_frames(video: OpenVideo, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield the frames at `indices` (ascending) as (H, W, 3) uint8, decoding a bounded chunk at a time."""
    errors = _decode_errors()
    frame_bytes = max(1, video.height * video.width * 3)
    chunk = max(1, FRAME_BUDGET_BYTES // frame_bytes)
    for start in range(0, len(indices), chunk):
        wanted = list(indices[start : start + chunk])
        try:
            frames = video.reader.get_batch(wanted).asnumpy()  # (b, H, W, 3) uint8
        except errors as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise InputFileError(
                f"{video.path}: decoding failed near frame {wanted[0]} of {video.plan.n_frames} ({reason})"
            ) from None
        yield from frames
