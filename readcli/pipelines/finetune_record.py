"""What the task runs of `finetune` share: the result, the training log, and `train_and_record`.

pipelines/finetune.py runs a task (pipelines/_grounding_run.py, _summarization_run.py); both task
modules build on `RecordedRun` here, so none of them imports finetune.py (no import cycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.adapters import count_parameters
from readcli.fileio import atomic_write_json, atomic_write_text, finite_or_null
from readcli.pipelines.finetune_request import TaskRequest
from readcli.training.distributed import current
from readcli.training.loop import ProgressCallback
from readcli.training.loop import train as train_loop
from readcli.training.resume_point import ResumePoint

BEST_DIR = "best"


@dataclass
class FinetuneResult:
    run_dir: Path
    best_epoch: int | None
    best_metrics: dict[str, float]
    history: list[dict[str, Any]]
    trainable: int
    total: int
    percent: float
    skipped_missing: int
    resumed_from_epoch: int
    rank: int = 0  # under several processes only rank 0 wrote RUN_DIR and should render the result


class JsonlLog:
    """The training log: one JSON object per line, appended and flushed as the run goes.

    `kept`: the text to start from (on resume, the checked lines of the epochs up to the checkpoint:
    later epochs are replayed); None starts an empty log. NaN and inf are written as null, so every
    line is standard JSON that a resume can check.
    """

    def __init__(self, path: Path, *, kept: str | None) -> None:
        self.path = path
        atomic_write_text(path, kept or "")

    def __call__(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(finite_or_null(record), allow_nan=False) + "\n")


class RecordedRun:
    """What the task runs (grounding, summarization) share: `train` through `train_and_record`.

    A subclass has `request`, `model`, `task`, `skipped_missing` and a `_save_best(out, model,
    evaluation, epoch)` that writes the best bundle and predictions.
    """

    request: TaskRequest
    model: Any
    task: Any
    skipped_missing: int

    def _save_best(self, out: Path, model: Any, evaluation: Any, epoch: int) -> None:
        raise NotImplementedError

    def train(
        self, out: Path, *, point: ResumePoint | None, progress: ProgressCallback | None
    ) -> FinetuneResult:
        return train_and_record(
            self.model,
            self.task,
            self.request,
            out,
            point=point,
            progress=progress,
            save_best=lambda model, evaluation, epoch: self._save_best(out, model, evaluation, epoch),
            skipped_missing=self.skipped_missing,
        )


def train_and_record(
    model: Any,
    task: Any,
    request: TaskRequest,
    out: Path,
    *,
    point: ResumePoint | None,
    progress: ProgressCallback | None,
    save_best: Callable[[Any, Any, int], None],
    skipped_missing: int,
) -> FinetuneResult:
    """Run the loop for any task, keep its log and metrics.json in RUN_DIR, and summarise the run.

    `point`: the checked run folder to continue (None: a fresh run). Under several processes only
    rank 0 keeps the log and writes metrics.json.
    """
    main = current().is_main
    log_file = JsonlLog(out / "train_log.jsonl", kept=point.log_text if point else None) if main else None
    result = train_loop(
        model, task, request.train, out,
        resume=point or False, progress=progress, save_best=save_best, write_log=log_file,
    )  # fmt: skip
    count = count_parameters(model)
    history = result.state.history
    metrics = {"best_epoch": result.state.best_epoch, "best": result.best_metrics, "history": history}
    if main:
        atomic_write_json(out / "metrics.json", metrics)
    return FinetuneResult(
        run_dir=out,
        best_epoch=result.state.best_epoch,
        best_metrics=result.best_metrics,
        history=history,
        trainable=count.trainable,
        total=count.total,
        percent=count.percent,
        skipped_missing=skipped_missing,
        resumed_from_epoch=result.resumed_from_epoch,
    )
