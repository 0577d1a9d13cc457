"""The training loop shared by every task: trainable parameters only, AMP, clipping, evaluation, resume.

Determinism and resume: every epoch starts from seeds derived from (seed, epoch) for both the data order
and the random number generators (dropout, negative sampling). A checkpoint is written at the end of
every epoch, so a run killed mid-epoch and resumed replays that epoch from its start and ends with the
same weights and metrics as an uninterrupted run (exactly on CPU). See docs/training.md.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from readcli.errors import InvalidValueError, TrainingError
from readcli.training.checkpoint import LoopState, latest_checkpoint, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (defaults: the official Moment-DETR ones where they exist)."""

    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    grad_clip: float = 0.1
    seed: int = 2018
    device: str = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    select_metric: str = "MR-full-mAP"
    select_mode: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InvalidValueError(f"--epochs {self.epochs} is invalid: use an integer >= 1")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise InvalidValueError(f"--lr {self.lr} is invalid: use a learning rate in (0, 1]")
        if self.weight_decay < 0:
            raise InvalidValueError(f"--weight-decay {self.weight_decay} is invalid: use a value >= 0")
        if self.batch_size < 1:
            raise InvalidValueError(f"--batch-size {self.batch_size} is invalid: use an integer >= 1")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise InvalidValueError(f"--amp {self.amp!r} is invalid: choose auto, off, bf16 or fp16")
        if self.select_mode not in ("max", "min"):
            raise InvalidValueError(f"select mode {self.select_mode!r} is invalid: choose max or min")


@dataclass
class StepOutput:
    """One training step's loss: the total to differentiate and its named parts (for logs and checks)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


@dataclass
class EvalOutput:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)


class TrainTask(Protocol):
    """What a task (grounding, summarisation, highlight detection) supplies to the loop."""

    def num_train_batches(self, batch_size: int) -> int: ...

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterable[Any]: ...

    def train_step(self, model: torch.nn.Module, batch: Any, device: torch.device) -> StepOutput: ...

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput: ...


@dataclass
class ProgressEvent:
    kind: Literal["start", "step", "eval", "epoch"]
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    parts: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    is_best: bool = False


ProgressCallback = Callable[[ProgressEvent], None]
SaveBest = Callable[[torch.nn.Module, EvalOutput, int], None]
LogWriter = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    state: LoopState
    best_metrics: dict[str, float]
    resumed_from_epoch: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError(f"--device {name}: no CUDA device is available; use cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"--device {name!r} is invalid: use auto, cpu, cuda or cuda:N") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per epoch (so a resumed epoch replays exactly)."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def _autocast(device: torch.device, amp: str) -> AbstractContextManager[Any]:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return nullcontext()
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16 if bf16_ok else torch.float16)


def _check_finite(output: StepOutput, epoch: int, step: int) -> None:
    if bool(torch.isfinite(output.total.detach())):
        return
    bad = [name for name, value in output.parts.items() if not bool(torch.isfinite(value.detach()).all())]
    culprit = ", ".join(bad) if bad else "total"
    raise TrainingError(
        f"loss became non-finite at epoch {epoch + 1}, step {step + 1} (in {culprit}); training stopped, "
        "the last good checkpoint is kept: lower --lr or check the input features for outliers"
    )


def _is_better(score: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return score > best if mode == "max" else score < best


def train(
    model: torch.nn.Module,
    task: TrainTask,
    settings: TrainSettings,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    save_best: SaveBest | None = None,
    write_log: LogWriter | None = None,
) -> TrainResult:
    """Train `model`'s trainable parameters on `task`, evaluating and checkpointing every epoch."""
    device = resolve_device(settings.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the model has no trainable parameters: check the --method")
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    state = LoopState()
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is not None:
            state = load_checkpoint(checkpoint, model, optimizer)
            log.info("resumed from %s after epoch %d", checkpoint, state.epochs_done)
    resumed_from = state.epochs_done
    emit = progress or (lambda event: None)
    logger = write_log or (lambda record: None)
    steps = task.num_train_batches(settings.batch_size)
    if steps == 0:
        raise TrainingError("the training set is empty: nothing to train on")
    emit(ProgressEvent("start", state.epochs_done, settings.epochs, steps=steps))
    best_metrics = _best_metrics(state)

    for epoch in range(state.epochs_done, settings.epochs):
        seed = epoch_seed(settings.seed, epoch)
        seed_everything(seed)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for step, batch in enumerate(task.train_batches(settings.batch_size, generator)):
            parts = _train_step(model, task, batch, device, optimizer, params, settings, epoch, step)
            state.global_step += 1
            emit(ProgressEvent("step", epoch, settings.epochs, step + 1, steps, parts=parts))
            logger({"event": "step", "epoch": epoch + 1, "step": state.global_step, **parts})
        model.eval()
        with torch.no_grad(), _autocast(device, settings.amp):
            evaluation = task.evaluate(model, device)
        score = _select_score(evaluation.metrics, settings.select_metric)
        is_best = _is_better(score, state.best_score, settings.select_mode)
        state.epochs_done = epoch + 1
        state.history.append({"epoch": epoch + 1, **evaluation.metrics})
        if is_best:
            state.best_score, state.best_epoch = score, epoch + 1
            best_metrics = dict(evaluation.metrics)
            if save_best is not None:
                save_best(model, evaluation, epoch + 1)
        logger({"event": "eval", "epoch": epoch + 1, "best": is_best, **evaluation.metrics})
        emit(ProgressEvent("eval", epoch + 1, settings.epochs, metrics=evaluation.metrics, is_best=is_best))
        save_checkpoint(run_dir, model, optimizer, state)
    return TrainResult(state=state, best_metrics=best_metrics, resumed_from_epoch=resumed_from)


def _train_step(
    model: torch.nn.Module,
    task: TrainTask,
    batch: Any,
    device: torch.device,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    settings: TrainSettings,
    epoch: int,
    step: int,
) -> dict[str, float]:
    with _autocast(device, settings.amp):
        output = task.train_step(model, batch, device)
    _check_finite(output, epoch, step)
    optimizer.zero_grad(set_to_none=True)
    output.total.backward()
    if settings.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
    optimizer.step()
    return {"loss": float(output.total.detach()), **{k: float(v.detach()) for k, v in output.parts.items()}}


def _select_score(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise InvalidValueError(
            f"selection metric {name!r} is not among the evaluation metrics: {', '.join(sorted(metrics))}"
        )
    return float(metrics[name])


def _best_metrics(state: LoopState) -> dict[str, float]:
    for record in state.history:
        if record.get("epoch") == state.best_epoch:
            return {k: v for k, v in record.items() if k != "epoch"}
    return {}


def batches_of(indices: list[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]
