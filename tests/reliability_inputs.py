"""Tiny inputs shared by tests/test_reliability.py and tests/test_faults.py (built once per module).

A QVHighlights-layout grounding folder with small random features, tiny Moment-DETR backbones
(one with the widths of the finetune data, one with CLIP's widths for `ground`), bad videos made
from a real clip or with ffmpeg, and a checkpoint whose pickle would run code.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, save_backbone
from readcli.features.store import save_feature_array


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def grounding_dir(root: Path, shared_data: Path, *, train: int = 12, val: int = 6) -> Path:
    """Real QVHighlights rows; 16-d video rows and 12-d token rows (the tiny model's widths)."""
    root.mkdir(parents=True, exist_ok=True)
    qvh = shared_data / "qvhighlights"
    train_rows = read_jsonl(qvh / "highlight_train_release.jsonl", train)
    val_rows = read_jsonl(qvh / "highlight_val_release.jsonl", val)
    write_jsonl(root / "train.jsonl", train_rows)
    write_jsonl(root / "val.jsonl", val_rows)
    rng = np.random.default_rng(0)
    for row in train_rows + val_rows:
        clips = int(row["duration"] // 2)
        save_feature_array(
            root / "video_features" / "clip" / f"{row['vid']}.npz", "features", rng.normal(size=(clips, 16))
        )
        words = len(row["query"].split()) + 2
        save_feature_array(
            root / "text_features" / f"qid{row['qid']}.npz", "last_hidden_state", rng.normal(size=(words, 12))
        )
    return root


def tiny_backbone(path: Path, **overrides: Any) -> Path:
    """A saved tiny Moment-DETR (seeded, so two calls give the same weights)."""
    torch.manual_seed(0)
    save_backbone(build_backbone(tiny_moment_detr_config(**overrides)), path)
    return path


def ffmpeg(out: Path, *args: str) -> Path:
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
    subprocess.run(command, check=True)
    return out


def bad_videos(root: Path, real: Path) -> dict[str, Path]:
    """missing, empty, truncated, garbage, audio-only and one-frame videos."""
    root.mkdir(parents=True, exist_ok=True)
    made = {
        "missing": root / "missing.mp4",
        "empty": root / "empty.mp4",
        "truncated": root / "truncated.mp4",
        "garbage": root / "garbage.mp4",
    }
    made["empty"].write_bytes(b"")
    made["truncated"].write_bytes(real.read_bytes()[:200_000])
    made["garbage"].write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    made["audio"] = ffmpeg(
        root / "audio.m4a", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"
    )
    made["one_frame"] = ffmpeg(
        root / "one_frame.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=30", "-frames:v", "1",
        "-pix_fmt", "yuv420p",
    )  # fmt: skip
    return made


class RunsCode:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """An official-layout checkpoint whose pickle would create `marker` when loaded unsafely."""
    torch.save({"model": {}, "opt": RunsCode(marker), "epoch": 1}, path)
    return path
