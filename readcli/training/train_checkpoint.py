"""Training checkpoints: trainable tensors, optimiser and loop state, saved so a kill never corrupts them.

Layout inside a run directory:

    checkpoints/epoch-0003/   trainable.safetensors, optimizer.pt, state.json
    checkpoints/LATEST        the name of the newest complete checkpoint (written atomically, last)

A checkpoint directory is complete before LATEST names it, so a kill at any moment leaves the previous
checkpoint as the one that loads. Only checkpoints of earlier epochs are removed, and only after
LATEST names the new, complete one. Only trainable tensors are stored (the frozen backbone is rebuilt
from its own source on resume). Reading a checkpoint back, checked: readcli.training.run_folder.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from readcli.fileio import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    write_failure,
)

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
CHECKPOINT_NAME = re.compile(r"epoch-(\d{4,9})")  # the folder names save_checkpoint writes


@dataclass
class LoopState:
    """What the loop needs to continue exactly where it stopped (at an epoch boundary)."""

    epochs_done: int = 0
    global_step: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors the optimiser updates, by parameter name (contiguous CPU copies)."""
    return {
        name: param.detach().to("cpu").contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def save_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: LoopState
) -> Path:
    """Write a complete checkpoint for `state.epochs_done`, then point LATEST at it."""
    root = run_dir / CHECKPOINTS
    name = f"epoch-{state.epochs_done:04d}"
    target = root / name
    staging = root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as err:  # a full disk or a read-only folder: one line, the previous checkpoint kept
        raise write_failure(staging, err) or err from None
    # through readcli.fileio (not safetensors' save_file) so a full disk is the same one-line error
    atomic_write_bytes(staging / "trainable.safetensors", save(trainable_state(model)))
    with atomic_open(staging / "optimizer.pt") as handle:
        torch.save(optimizer.state_dict(), handle)
    atomic_write_json(staging / "state.json", asdict(state))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    atomic_write_text(root / LATEST, name + "\n")
    _prune_older(root, state.epochs_done)
    return target


def _prune_older(root: Path, epochs_done: int) -> None:
    """Remove the checkpoints of earlier epochs (LATEST already names the newer, complete one).

    A later one (left by a kill between a checkpoint and its LATEST, then replayed) is never removed
    here: it is replaced whole when its epoch's new checkpoint is complete.
    """
    for old in root.iterdir():
        match = CHECKPOINT_NAME.fullmatch(old.name)
        if match and int(match.group(1)) < epochs_done and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder LATEST names, if it is a well-formed name of an existing folder (unchecked
    contents: resume reads it through readcli.training.run_folder)."""
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_bytes()[:64].decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    target = run_dir / CHECKPOINTS / name
    return target if CHECKPOINT_NAME.fullmatch(name) and target.is_dir() else None
