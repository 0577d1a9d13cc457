"""Probing videos with decord, then decoding the frames a clip plan asks for with PyAV, one at a time.

Two libraries, each for what it does well. decord probes: frame count, rate, per-frame timestamps and
size in milliseconds, with a frame index that the clip rule uses. But decord's reader demuxes ahead of
its decoder into an unbounded packet queue, so a reader kept open holds about the whole compressed
file in memory (measured: ~440 MB for a 400 MB file, ~90 MB for a 50 MB one, decoding the same
frames). So the decord reader is closed as soon as the probe is done, and frames are decoded with
PyAV, which demuxes on demand: resident memory stays flat in video length (docs/features.md).
Both wrap ffmpeg and yield frames in presentation order; the frames are pixel-identical (tested).

decord reports a bad file in several ways (RuntimeError, decord.DECORDError, an AssertionError on a
zero frame count); every one becomes an InputFileError whose message says why, in one line. Native
messages (ffmpeg's, decord's) printed while a file opens are captured and used as that reason rather
than left on the terminal. A failure while decoding names the frame it happened near.
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

import numpy as np

from readcli.errors import InputFileError
from readcli.features.clips import ClipPlan, plan_clips

log = logging.getLogger(__name__)

_FD_LOCK = threading.Lock()
_FFMPEG_LINE = re.compile(
    r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*(.*)$"
)  # "[mov,mp4,... @ 0x55d0] moov atom not found"
_DECORD_PREFIX = re.compile(r"^\[[\d:]+\]\s*\S+\.(?:cc|h):\d+:\s*")  # "[14:17:06] /src/x.cc:83: "


@dataclass(frozen=True)
class OpenVideo:
    """A probed video: the facts the clip rule needs (no reader is kept open; see the module doc)."""

    path: Path
    plan: ClipPlan
    height: int
    width: int
    decode_threads: int = 0  # 0 = let ffmpeg choose


def _decode_errors() -> tuple[type[BaseException], ...]:
    # lazy: decord (a native video decoder) loads only when a video is opened
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
    # lazy: decord (a native video decoder) loads only when a video is opened
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
        del reader  # stops decord's read-ahead, which would buffer the whole file
    except errors as err:
        raise InputFileError(f"{path}: {_reason(err, native)}") from None
    finally:
        # Damaged streams make ffmpeg print a line per broken macroblock while decoding; keep quiet.
        decord.logging.set_level(decord.logging.QUIET)
    if native:
        log.debug("%s: native messages while opening: %s", path, " | ".join(native))
    plan = plan_clips(n_frames, fps, clip_len, timestamps=timestamps)
    return OpenVideo(path=path, plan=plan, height=height, width=width, decode_threads=num_threads)


def iter_frames(video: OpenVideo, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield the frames at `indices` (ascending, repeats allowed) as (H, W, 3) uint8.

    Decodes forward from the start and converts only the wanted frames to RGB: one frame at a time is
    held, whatever the video's length. Forward decoding costs what seeking would: a clip-centre frame
    every 2 s is denser than the keyframes of usual encodes, so a seek would decode the same frames.
    """
    # lazy: PyAV (ffmpeg) loads only when frames are decoded
    import av

    wanted = list(indices)
    if not wanted:
        return
    if any(b < a for a, b in zip(wanted, wanted[1:], strict=False)):
        raise ValueError("frame indices must be ascending")
    next_wanted = 0  # position in `wanted`
    position = 0  # index of the frame being decoded
    try:
        with av.open(str(video.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = video.decode_threads
            for frame in container.decode(stream):
                while next_wanted < len(wanted) and wanted[next_wanted] == position:
                    yield frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                    next_wanted += 1
                if next_wanted == len(wanted):
                    return
                position += 1
    except (av.FFmpegError, ValueError, IndexError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise _midway_failure(video, wanted[next_wanted], reason) from None
    raise _midway_failure(video, wanted[next_wanted], f"the stream ended after {position} frames")


def _midway_failure(video: OpenVideo, frame: int, reason: str) -> InputFileError:
    return InputFileError(
        f"{video.path}: decoding failed near frame {frame} of {video.plan.n_frames} ({reason}): "
        "the file is damaged or cut short; re-encode or re-download it"
    )
