"""What a resume continues from, checked against the model and optimiser before anything is changed.

`ResumePoint` holds a checkpoint's contents already read and checked on their own
(readcli.training.run_folder): the loop state, the trainable tensors and the optimiser state.
`check_fits` checks them against the rebuilt model, the run's settings and its data (tensor names,
shapes, finite values; the optimiser's groups, moments and hyper-parameters; the step counter), and
changes nothing; `restore` loads them. docs/training.md, "Resume guarantees".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from readcli.errors import CheckpointError
from readcli.training.train_checkpoint import LoopState, trainable_state

# AdamW's per-parameter state: two moments shaped like the parameter, and a step count
MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass
class ResumePoint:
    """A checkpoint to continue from (`checkpoint` None: the run restarts at epoch 0)."""

    run_dir: Path
    checkpoint: Path | None = None
    state: LoopState = field(default_factory=LoopState)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_state: dict[str, Any] = field(default_factory=dict)
    log_text: str | None = None  # train_log.jsonl's lines of the kept epochs (None: leave the log as is)

    def check_fits(self, model: torch.nn.Module, lr: float, weight_decay: float, steps: int | None) -> None:
        """Refuse (one line naming the file) a checkpoint that does not fit; change nothing."""
        if self.checkpoint is None:
            return
        self._check_tensors(model)
        self._check_optimizer(model, lr, weight_decay)
        if steps is not None and self.state.global_step != self.state.epochs_done * steps:
            raise CheckpointError(
                f"{self.checkpoint / 'state.json'}: global_step {self.state.global_step} does not fit: "
                f"{self.state.epochs_done} epoch(s) of {steps} step(s) make "
                f"{self.state.epochs_done * steps} (have the data or --batch-size changed since it began?)"
            )

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
        """Load the checked tensors and optimiser state (call `check_fits` first)."""
        if self.checkpoint is None:
            return LoopState()
        self._check_tensors(model)
        optimizer.load_state_dict(self.optimizer_state)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.tensors.items():
                params[name].copy_(value)
        return self.state

    def _check_tensors(self, model: torch.nn.Module) -> None:
        where = self.checkpoint / "trainable.safetensors"  # type: ignore[operator]
        expected = trainable_state(model)
        missing = sorted(set(expected) - set(self.tensors))
        extra = sorted(set(self.tensors) - set(expected))
        if missing or extra:
            raise CheckpointError(
                f"cannot resume from {self.checkpoint}: it does not match this model's trainable tensors "
                f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}); "
                "was the run started with other --method or --backbone settings?"
            )
        for name, value in self.tensors.items():
            if value.shape != expected[name].shape:
                raise CheckpointError(
                    f"{where}: {name} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(expected[name].shape)}"
                )
            if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise CheckpointError(
                    f"{where}: {name} holds {value.dtype} values that are not all finite floats: "
                    "the checkpoint is damaged"
                )

    def _check_optimizer(self, model: torch.nn.Module, lr: float, weight_decay: float) -> None:
        where = self.checkpoint / "optimizer.pt"  # type: ignore[operator]
        params = [p for p in model.parameters() if p.requires_grad]
        state, groups = self.optimizer_state.get("state"), self.optimizer_state.get("param_groups")
        if not isinstance(state, dict) or not isinstance(groups, list) or len(groups) != 1:
            raise CheckpointError(
                f"{where}: not an AdamW state of one parameter group (keys 'state' and 'param_groups')"
            )
        group = groups[0]
        indices = group.get("params") if isinstance(group, dict) else None
        if not isinstance(indices, list) or _sorted_ints(indices) != list(range(len(params))):
            count = len(indices) if isinstance(indices, list) else "no"
            raise CheckpointError(
                f"{where}: its parameter group holds {count} parameters, this model trains {len(params)}: "
                "the optimiser state does not fit (another --method or --backbone?)"
            )
        _check_hyper(where, group, lr, weight_decay)
        for index, slots in state.items():
            if type(index) is not int or index not in indices or not isinstance(slots, dict):
                raise CheckpointError(f"{where}: state for parameter {index!r} that the group does not hold")
            _check_slots(where, index, slots, params[indices.index(index)].shape)
        try:  # what torch itself checks (group sizes, keys), on a throwaway optimiser
            torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay).load_state_dict(self.optimizer_state)
        except Exception as err:  # noqa: BLE001 - untrusted content: torch's errors vary with it
            reason = " ".join(str(err).split())
            raise CheckpointError(f"{where}: does not fit this run's optimiser ({reason})") from None


def _check_slots(where: Path, index: int, slots: dict[str, Any], shape: torch.Size) -> None:
    """One parameter's AdamW state: two finite moments of its shape and a non-negative step count."""
    for name in MOMENTS:
        value = slots.get(name)
        if not isinstance(value, torch.Tensor) or value.shape != shape:
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(
                f"{where}: {name} of parameter {index} is {found}, expected a tensor of shape "
                f"{tuple(shape)}: the optimiser state does not fit this model"
            )
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{where}: {name} of parameter {index} holds NaN or inf")
    step = slots.get("step")
    if not math.isfinite(_count(step)) or _count(step) < 0:
        raise CheckpointError(f"{where}: step of parameter {index} is {step!r}, not a count")


def _count(value: object) -> float:
    """A plain number or a one-element real tensor as a float; NaN for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value)
    return math.nan


def _sorted_ints(values: list[object]) -> list[int] | None:
    """The values sorted, if all are plain integers (parameter indices), else None."""
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sorted(ints) if len(ints) == len(values) else None


def _check_hyper(where: Path, group: dict[str, Any], lr: float, weight_decay: float) -> None:
    """The group's hyper-parameters are the run's: a resume keeps --lr (docs/training.md)."""
    for key, wanted in (("lr", lr), ("weight_decay", weight_decay)):
        value = group.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value != wanted:
            raise CheckpointError(
                f"{where}: its {key} is {value!r}, the run's is {wanted!r} (run.json): the optimiser state "
                "belongs to another run"
            )
    betas, eps = group.get("betas"), group.get("eps")
    if not (
        isinstance(betas, tuple | list)
        and len(betas) == 2
        and all(isinstance(b, float) and 0 <= b < 1 for b in betas)
        and isinstance(eps, float)
        and 0 < eps < 1
    ):
        raise CheckpointError(f"{where}: its betas {betas!r} or eps {eps!r} are not AdamW's valid values")
