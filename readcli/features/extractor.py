"""Video features, streamed: a decode thread reads and preprocesses frames while CLIP encodes.

Dimensions: b frames in a batch, S image side, C clips of one video, D image embedding.

One producer thread walks every video in turn (so the next video's decoding overlaps with the last
batch of the current one) and hands over batches of preprocessed frames through a bounded queue;
the caller's thread encodes them. Memory stays flat in video length: a bounded chunk of full frames,
at most three batches of crops, and the (C, D) result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readcli.errors import InputFileError
from readcli.features.clip_encoder import ClipEncoder
from readcli.features.clips import ClipPlan
from readcli.features.prefetch import Prefetcher
from readcli.features.video import iter_frames, open_video

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, int], None]  # (video index, clips done, clips in that video)


@dataclass(frozen=True)
class VideoStarted:
    index: int
    plan: ClipPlan


@dataclass(frozen=True)
class PixelBatch:
    index: int
    start: int  # clip index of the first row
    pixels: torch.Tensor  # (b, 3, S, S)


@dataclass(frozen=True)
class VideoFailed:
    """A video that could not be read; `reason` is one line that names the file."""

    index: int
    path: Path
    reason: str


@dataclass(frozen=True)
class VideoFeatures:
    index: int
    path: Path
    plan: ClipPlan
    features: np.ndarray  # (C, D) float32


StreamItem = VideoStarted | PixelBatch | VideoFailed


def decode_stream(
    paths: Sequence[Path],
    *,
    clip_len: float,
    batch_size: int,
    preprocess: Callable[[Any], torch.Tensor],
    decode_threads: int = 0,
) -> Iterator[StreamItem]:
    """For each video: VideoStarted, then its PixelBatch items, or a VideoFailed (possibly midway)."""
    # lazy: PIL loads only when frames are decoded
    from PIL import Image

    for index, path in enumerate(paths):
        try:
            video = open_video(path, clip_len=clip_len, num_threads=decode_threads)
        except InputFileError as err:
            yield VideoFailed(index, path, str(err))
            continue
        yield VideoStarted(index, video.plan)
        batch: list[torch.Tensor] = []
        start = 0
        try:
            for frame in iter_frames(video, video.plan.frame_indices):
                batch.append(preprocess(Image.fromarray(frame)))  # (3, S, S)
                if len(batch) == batch_size:
                    yield PixelBatch(index, start, torch.stack(batch))  # (b, 3, S, S)
                    start, batch = start + len(batch), []
            if batch:
                yield PixelBatch(index, start, torch.stack(batch))  # (b, 3, S, S)
        except InputFileError as err:
            yield VideoFailed(index, path, str(err))
        finally:
            del video  # close the reader before the next file opens


def extract_videos(
    paths: Sequence[Path],
    encoder: ClipEncoder,
    *,
    clip_len: float,
    batch_size: int,
    progress: ProgressFn | None = None,
    decode_threads: int = 0,
    prefetch_depth: int = 1,
) -> Iterator[VideoFeatures | VideoFailed]:
    """Yield each video's (C, D) features, or its failure, in input order, as soon as it is done."""
    stream = decode_stream(
        paths,
        clip_len=clip_len,
        batch_size=batch_size,
        preprocess=encoder.preprocess,
        decode_threads=decode_threads,
    )
    current: tuple[VideoStarted, np.ndarray] | None = None
    with Prefetcher(stream, depth=prefetch_depth, name="readcli-decode") as items:
        for item in items:
            if isinstance(item, VideoFailed):
                current = None
                yield item
            elif isinstance(item, VideoStarted):
                current = (item, np.empty((item.plan.n_clips, encoder.spec.image_dim), dtype=np.float32))
                if progress is not None:
                    progress(item.index, 0, item.plan.n_clips)
            else:
                assert current is not None and current[0].index == item.index, "batches follow their video"
                started, out = current
                rows = encoder.encode_images(item.pixels).numpy()  # (b, D)
                out[item.start : item.start + len(rows)] = rows
                done = item.start + len(rows)
                if progress is not None:
                    progress(item.index, done, started.plan.n_clips)
                if done == started.plan.n_clips:
                    current = None
                    yield VideoFeatures(started.index, paths[started.index], started.plan, out)
