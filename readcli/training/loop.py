"""The training loop shared by every task: trainable parameters only, AMP, clipping, evaluation, resume.

Determinism and resume: every epoch starts from seeds derived from (seed, epoch) for both the data order
and the random number generators (dropout, negative sampling). A checkpoint is written at the end of
every epoch, so a run killed mid-epoch and resumed replays that epoch from its start and ends with the
same weights and metrics as an uninterrupted run (exactly on CPU). See docs/training.md.

Several processes (torchrun, accelerate launch; docs/distributed.md): every rank draws the same global
batches, runs its own contiguous part of each, and DDP averages the gradients of the trainable
parameters, each rank's loss weighted by its share of the batch, so a step equals the one-process
step on the whole global batch for any loss that is a mean over examples. Evaluation is split across
ranks and gathered; only rank 0 writes (checkpoints, bundles, logs) and reports progress.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from readcli.errors import InvalidValueError, TrainingError
from readcli.options.training import AMP, BATCH_SIZE, DEVICE, EPOCHS, LR, SEED
from readcli.seeding import seed_everything
from readcli.training.distributed import (
    Dist,
    broadcast,
    current,
    gather_lists,
    local_part,
    resolve_device,
    wrap,
)
from readcli.training.guards import first_step_guard, require_finite_weights
from readcli.training.resume_point import ResumePoint
from readcli.training.run_folder import read_checkpoint
from readcli.training.step import StepOutput, Stepper, autocast
from readcli.training.train_checkpoint import LoopState, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (defaults: the official Moment-DETR ones where they exist)."""

    epochs: int = EPOCHS.default
    lr: float = LR.default
    weight_decay: float = 1e-4
    batch_size: int = BATCH_SIZE.default
    grad_clip: float = 0.1
    seed: int = SEED.default
    device: str = DEVICE.default
    amp: Literal["auto", "off", "bf16", "fp16"] = AMP.default  # type: ignore[assignment]  # a str spec, checked below
    select_metric: str = "MR-full-mAP"
    select_mode: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        EPOCHS.validate(self.epochs)
        LR.validate(self.lr)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):  # NaN would poison every weight
            raise InvalidValueError(f"--weight-decay {self.weight_decay} is invalid: use a finite value >= 0")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise InvalidValueError(
                f"grad_clip {self.grad_clip} is invalid: use a finite value >= 0 (0: no clipping)"
            )
        BATCH_SIZE.validate(self.batch_size)
        AMP.validate(self.amp)
        if self.select_mode not in ("max", "min"):
            raise InvalidValueError(f"select mode {self.select_mode!r} is invalid: choose max or min")


@dataclass
class EvalOutput:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)


class TrainTask(Protocol):
    """What a task (grounding, summarisation, highlight detection) supplies to the loop.

    `train_step` gets the model to call: under several processes a DDP wrapper that forwards attribute
    reads and writes to the model, so `model.collect_block_states = ...` and `model(**inputs)` work
    unchanged (call forward through it, or gradients are not averaged).

    To run under several processes a task also provides (`_check_shardable` asks for them):
      train_index_batches(batch_size, generator) -> iterable of lists of example indices: the global
        batches, drawn exactly as `train_batches` draws them;
      train_collate(indices) -> a batch for `train_step` made of those examples.
    and, optionally, sharded evaluation (without it rank 0 evaluates alone while the others wait):
      eval_size() -> int; eval_predict(model, device, indices) -> prediction rows for those validation
      examples, in order; eval_score(rows) -> EvalOutput for all rows.
    A loss that is a mean over the examples of the batch gives the one-process gradient exactly; a
    loss that divides by a batch-level count (matched windows, tokens) divides its sum by
    `readcli.training.step.count_normaliser(local_count, device)` when that is not None.
    """

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


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per epoch (so a resumed epoch replays exactly)."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


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
    resume: bool | ResumePoint = False,
    progress: ProgressCallback | None = None,
    save_best: SaveBest | None = None,
    write_log: LogWriter | None = None,
) -> TrainResult:
    """Train `model`'s trainable parameters on `task`, evaluating and checkpointing every epoch.

    Under several processes (an initialised process group) every rank calls this alike; only rank 0
    calls `progress`, `save_best` and `write_log` and writes checkpoints. `run_dir` must be shared by
    the ranks for resume (each rank reads the checkpoint). `resume`: True reads and checks the
    checkpoint `run_dir/checkpoints/LATEST` names (none: start at epoch 0); a `ResumePoint` is one the
    caller has read and checked already (readcli.training.run_folder). Either is checked against the
    model and optimiser before anything changes.
    """
    job = current()
    device = resolve_device(settings.device, local_rank=job.local_rank)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the model has no trainable parameters: check the --method")
    if job.enabled:
        _check_shardable(task, settings, job)
    require_finite_weights(model)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = task.num_train_batches(settings.batch_size)
    if steps == 0:
        raise TrainingError("the training set is empty: nothing to train on")
    state = LoopState()
    if resume is not False:
        point = resume if isinstance(resume, ResumePoint) else _read_point(run_dir, settings.epochs)
        point.check_fits(model, settings.lr, settings.weight_decay, steps)
        state = point.restore(model, optimizer)
        if point.checkpoint is not None:
            log.info("resumed from %s after epoch %d", point.checkpoint, state.epochs_done)
    resumed_from = state.epochs_done
    stepper = Stepper(
        wrap(model, device, job), task, optimizer, params, settings.amp, settings.grad_clip, device, job
    )
    emit = progress if progress is not None and job.is_main else (lambda event: None)
    logger = write_log if write_log is not None and job.is_main else (lambda record: None)
    emit(ProgressEvent("start", state.epochs_done, settings.epochs, steps=steps))
    best_metrics = _best_metrics(state)

    for epoch in range(state.epochs_done, settings.epochs):
        seed = epoch_seed(settings.seed, epoch)
        seed_everything(seed)  # the same on every rank: the global batches must agree
        generator = torch.Generator().manual_seed(seed)
        stepper.model.train()
        for step, (batch, weight) in enumerate(_epoch_batches(task, settings.batch_size, generator, job)):
            with first_step_guard(first=state.global_step == 0):
                parts = stepper.step(batch, weight, epoch, step)
            state.global_step += 1
            emit(ProgressEvent("step", epoch, settings.epochs, step + 1, steps, parts=parts))
            logger({"event": "step", "epoch": epoch + 1, "step": state.global_step, **parts})
        evaluation = _evaluate(task, model, device, settings.amp, job)
        score = _select_score(evaluation.metrics, settings.select_metric)
        is_best = _is_better(score, state.best_score, settings.select_mode)
        state.epochs_done = epoch + 1
        state.history.append({"epoch": epoch + 1, **evaluation.metrics})
        if is_best:
            state.best_score, state.best_epoch = score, epoch + 1
            best_metrics = dict(evaluation.metrics)
            if save_best is not None and job.is_main:
                save_best(model, evaluation, epoch + 1)
        logger({"event": "eval", "epoch": epoch + 1, "best": is_best, **evaluation.metrics})
        emit(ProgressEvent("eval", epoch + 1, settings.epochs, metrics=evaluation.metrics, is_best=is_best))
        if job.is_main:
            save_checkpoint(run_dir, model, optimizer, state)
        job.barrier()  # no rank runs ahead of a checkpoint that a resume would start from
    return TrainResult(state=state, best_metrics=best_metrics, resumed_from_epoch=resumed_from)


def _read_point(run_dir: Path, epochs: int) -> ResumePoint:
    return read_checkpoint(run_dir, epochs)


def _check_shardable(task: TrainTask, settings: TrainSettings, job: Dist) -> None:
    missing = [name for name in ("train_index_batches", "train_collate") if not hasattr(task, name)]
    if missing:
        raise TrainingError(
            f"{type(task).__name__} cannot train under {job.world} processes: it lacks "
            f"{' and '.join(missing)} (see readcli.training.loop.TrainTask); run it in one process"
        )
    if settings.batch_size < job.world:
        raise InvalidValueError(
            f"--batch-size {settings.batch_size} is the global batch, split over {job.world} processes: "
            f"use at least {job.world}"
        )


def _epoch_batches(
    task: TrainTask, batch_size: int, generator: torch.Generator, job: Dist
) -> Iterator[tuple[Any, float]]:
    """(batch, loss weight) per step: the whole batch, weight 1, in one process; under several, this
    rank's part of each global batch, weighted by (part size * world / global size) so that DDP's mean
    of the ranks' gradients is the gradient of the mean over the whole global batch."""
    if not job.enabled:
        for batch in task.train_batches(batch_size, generator):
            yield batch, 1.0
        return
    shardable: Any = task
    for indices in shardable.train_index_batches(batch_size, generator):
        part = local_part(list(indices), job)
        # an empty part (a last batch smaller than the world) still steps, on a stand-in weighted 0:
        # every rank must take part in each gradient all-reduce
        yield shardable.train_collate(part or list(indices[:1])), len(part) * job.world / len(indices)


def _evaluate(
    task: TrainTask, model: torch.nn.Module, device: torch.device, amp: str, job: Dist
) -> EvalOutput:
    """The task's evaluation on the whole validation set; under several processes split across ranks
    and gathered (in the one-process order), or run by rank 0 alone for a task that cannot split it."""
    model.eval()
    with torch.no_grad(), autocast(device, amp):
        if not job.enabled:
            return task.evaluate(model, device)
        sharded: Any = task
        if all(hasattr(task, name) for name in ("eval_size", "eval_predict", "eval_score")):
            part = local_part(list(range(sharded.eval_size())), job)
            rows = gather_lists(sharded.eval_predict(model, device, part), job)
            evaluation: EvalOutput = sharded.eval_score(rows)
            return evaluation
        alone = task.evaluate(model, device) if job.is_main else None
        # the other ranks' placeholder is replaced by rank 0's metrics
        metrics = broadcast(alone.metrics if alone is not None else {}, job)
        return alone if alone is not None else EvalOutput(metrics=metrics)


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
