"""Training checkpoints: trainable tensors, optimiser and loop state, saved so a kill never corrupts them.

Layout inside a run directory:

    checkpoints/epoch-0003/   trainable.safetensors, optimizer.pt, state.json
    checkpoints/LATEST        the name of the newest complete checkpoint (written atomically, last)

A checkpoint directory is complete before LATEST names it, so a kill at any moment leaves the previous
checkpoint as the one that loads. Older checkpoints are removed only after LATEST moves on.
Only trainable tensors are stored (the frozen backbone is rebuilt from its own source on resume).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from readcli.errors import CheckpointError
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
    for old in root.iterdir():  # keep only the newest complete checkpoint
        if old.is_dir() and old.name != name and old.name.startswith("epoch-"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    target = run_dir / CHECKPOINTS / pointer.read_text(encoding="utf-8").strip()
    return target if target.is_dir() else None


def load_checkpoint(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
    """Restore trainable tensors, optimiser state and loop state; refuse a checkpoint that does not fit."""
    try:
        tensors = load_file(str(checkpoint / "trainable.safetensors"))
        optimizer_state = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)
        raw = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (OSError, SafetensorError, RuntimeError, ValueError, EOFError) as err:
        raise CheckpointError(f"cannot resume from {checkpoint}: {err}") from None
    expected = trainable_state(model)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: it does not match this model's trainable tensors "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}); "
            "was the run started with other --method or --backbone settings?"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            if params[name].shape != value.shape:
                raise CheckpointError(
                    f"cannot resume from {checkpoint}: {name} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(params[name].shape)}"
                )
            params[name].copy_(value)
    optimizer.load_state_dict(optimizer_state)
    return LoopState(**raw)
