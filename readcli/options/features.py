"""Options of the CLIP feature extraction that `extract`, `ground` and `inspect-ot` share (docs/data.md)."""

from __future__ import annotations

from readcli.options import Option, integer_at_least

# Frames per CLIP forward pass: a batch is allocated whole (224 x 224 x 3 floats a frame), so 10**9
# would ask for terabytes; 4096 frames is already ~2.5 GB.
MAX_BATCH_SIZE = 4096
FRAMES_BATCH: Option[int] = Option(
    "--batch-size",
    32,
    "Frames per CLIP forward pass.",
    check=lambda v: integer_at_least(1)(v) and v <= MAX_BATCH_SIZE,
    valid=f"use a positive integer <= {MAX_BATCH_SIZE} (e.g. 32)",
)
