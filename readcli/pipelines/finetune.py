"""`readcli finetune`: adapt a frozen backbone to a dataset with one method, keep the best adapter bundle.

RUN_DIR holds: run.json (the request, so `--resume RUN_DIR` needs nothing else), checkpoints/ (every
epoch, for resume), best/ (the best adapter bundle), best_val_preds.jsonl, metrics.json and
train_log.jsonl. Every file is written atomically. A resume checks the whole folder, and that its
options agree with run.json, before it writes anything (readcli.training.run_folder); a fresh run
that fails before its first checkpoint removes what it created. See docs/training.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, choices_text
from readcli.fileio import atomic_write_json, atomic_write_text, finite_or_null
from readcli.pipelines.run_dir import (
    RUN_FILE,
    check_fresh_out,
    check_resume_settings,
    removed_on_failure,
    start_run_dir,
    with_absolute_paths,
)
from readcli.training.loop import ProgressCallback, TrainSettings
from readcli.training.resume_point import ResumePoint

log = logging.getLogger(__name__)

TASKS = ("tlg", "vls")
# the metric that picks the best epoch when the request keeps the loop's default
SELECT_METRICS: dict[str, str] = {"tlg": "MR-full-mAP", "vls": "rougeL"}
# the backbone used when the request keeps another task's default
DEFAULT_BACKBONES: dict[str, str] = {"tlg": "moment-detr-clip", "vls": "bart-base-vg"}
BEST_DIR = "best"


@dataclass(frozen=True)
class FinetuneRequest:
    """Everything a fine-tuning run depends on; saved as RUN_DIR/run.json."""

    data: str
    out: str
    task: str = "tlg"
    backbone: str = "moment-detr-clip"
    method: str = "read"
    bottleneck: int | None = None
    rnn: str = "rnn"
    pvla: bool = True
    pvla_weight: float = 1.0
    mass: float = 0.5
    mass_mode: str = "fixed"
    tau: float = 0.05
    train_samples: int | None = None
    skip_missing: bool = False
    train: TrainSettings = field(default_factory=TrainSettings)
    # vls only: the video feature width (a new fusion head is built for it; None = the backbone's)
    video_dim: int | None = None
    # vls only: the fusion options replacing the preset's (VisionGuidedConfig fields; docs/summarization.md)
    fusion_options: dict[str, Any] | None = None
    # vls only: beam search for the validation summaries, as VG-GPLMs' shipped scripts (docs/summarization.md)
    beams: int = 5
    no_repeat_ngram_size: int = 3
    max_summary_length: int = 64
    # tlg on highlight datasets: "youtube" | "tvsum" (None: the layout's own rows, e.g. QVHighlights)
    dataset: str | None = None
    # tlg on highlight datasets: one domain, or "all" (each domain trained and evaluated on its own)
    domain: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: Path) -> FinetuneRequest:
        """The request a run.json holds, checked by its schema (readcli.training.run_records)."""
        from readcli.records import validate
        from readcli.training.run_records import RunRecord

        # only the fields the file holds: a field an older run.json lacks takes the dataclass's default
        record = validate(RunRecord, data, str(source)).model_dump(exclude_unset=True)
        train = record.pop("train", {})
        try:
            return cls(**record, train=TrainSettings(**train))
        except InvalidValueError as err:
            raise InputFileError(f"{source}: {err}") from None


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


def resume_request(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    device: str | None = None,
    changes: dict[str, Any] | None = None,
) -> FinetuneRequest:
    """The request saved in RUN_DIR, with more epochs or another device, and `changes` (options given
    again on resume, by field name; `run` refuses those that differ from the recorded ones)."""
    request = read_run_file(Path(run_dir) / RUN_FILE)
    return apply_changes(request, epochs=epochs, device=device, changes=changes, out=run_dir)


def read_run_file(path: Path) -> FinetuneRequest:
    from readcli.records import read_json_file

    if not path.is_file():
        raise InputFileError(
            f"cannot resume: {path} not found (is {path.parent} a readcli finetune run directory?)"
        )
    return FinetuneRequest.from_json(read_json_file(path), path)


def apply_changes(
    request: FinetuneRequest,
    *,
    epochs: int | None,
    device: str | None,
    changes: dict[str, Any] | None,
    out: str | Path,
) -> FinetuneRequest:
    train_fields = set(asdict(request.train))
    changes = {**(changes or {}), **({"epochs": epochs} if epochs is not None else {})}
    changes.update({"device": device} if device is not None else {})
    train = replace(request.train, **{k: v for k, v in changes.items() if k in train_fields})
    top = {k: v for k, v in changes.items() if k not in train_fields}
    return replace(request, **top, out=str(out), train=train)


def _check_request(request: FinetuneRequest, *, resume: bool) -> Path:
    if request.task not in TASKS:
        raise InvalidValueError(
            f"--task {request.task!r} is not available: choose one of {choices_text(TASKS)}"
        )
    if request.train_samples is not None and request.train_samples < 1:
        raise InvalidValueError(f"--train-samples {request.train_samples} is invalid: use an integer >= 1")
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"--out {out} exists and is not a directory")
    if not resume:
        check_fresh_out(out)
    return out


def check_resume(request: FinetuneRequest) -> ResumePoint:
    """What `run(request, resume=True)` checks before loading anything heavy (no model: the tensors'
    fit is checked once the model is built)."""
    out = _check_request(request, resume=True)
    return _resume_point(with_absolute_paths(with_task_defaults(request)), out)


def _resume_point(request: FinetuneRequest, out: Path) -> ResumePoint:
    """The run folder checked whole, and the request checked against its run.json: nothing written."""
    from readcli.training.run_folder import inspect_run_folder

    recorded = with_absolute_paths(read_run_file(out / RUN_FILE))
    check_resume_settings(request.to_json(), recorded.to_json(), out / RUN_FILE)
    return inspect_run_folder(out, request.train.epochs, recorded_epochs=recorded.train.epochs)


def run(
    request: FinetuneRequest, *, resume: bool = False, progress: ProgressCallback | None = None
) -> FinetuneResult:
    """Fine-tune, evaluating every epoch; the best bundle, predictions and metrics land in RUN_DIR.

    Under torchrun or accelerate launch (WORLD_SIZE > 1) every process calls this alike: each joins
    the process group, trains its share of every global batch, and only rank 0 writes RUN_DIR
    (docs/distributed.md).
    """
    from readcli.pipelines._grounding_run import prepare_grounding_run
    from readcli.training.distributed import process_group

    with process_group(request.train.device) as job:
        out = _check_request(request, resume=resume)
        request = with_absolute_paths(with_task_defaults(request))
        pvla = _pvla_settings(request)  # validates before any heavy work
        point = _resume_point(request, out) if resume else None
        run: Any
        if request.task == "vls":
            from readcli.pipelines._summarization_run import prepare_summarization_run

            run = prepare_summarization_run(request, pvla)
        else:
            run = prepare_grounding_run(request, pvla)
        if point is not None:  # the checkpoint against the rebuilt model, before the first write
            steps = run.task.num_train_batches(request.train.batch_size)
            point.check_fits(run.model, request.train.lr, request.train.weight_decay, steps)
        job.barrier()  # every rank has checked --out (and the run folder) before rank 0 writes
        with removed_on_failure(out, enabled=job.is_main and not resume):
            if job.is_main:
                start_run_dir(out, request.to_json())
            result = run.train(out, point=point, progress=progress)
        return replace(result, rank=job.rank)


def with_task_defaults(request: FinetuneRequest) -> FinetuneRequest:
    """The request with its task's selection metric and backbone where it keeps another task's defaults."""
    metric, wanted = request.train.select_metric, SELECT_METRICS[request.task]
    if metric != wanted and metric in SELECT_METRICS.values():
        request = replace(request, train=replace(request.train, select_metric=wanted))
    backbone = DEFAULT_BACKBONES[request.task]
    if request.backbone != backbone and request.backbone in DEFAULT_BACKBONES.values():
        request = replace(request, backbone=backbone)
    return request


def _pvla_settings(request: FinetuneRequest) -> Any:
    from readcli.alignment import PVLASettings

    if not request.pvla:
        return None
    mode: Any = request.mass_mode  # PVLASettings validates it
    return PVLASettings(weight=request.pvla_weight, mass=request.mass, mass_mode=mode, tau=request.tau)


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

    request: FinetuneRequest
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
    request: FinetuneRequest,
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
    from readcli.adapters import count_parameters
    from readcli.training.distributed import current
    from readcli.training.loop import train

    main = current().is_main
    log_file = JsonlLog(out / "train_log.jsonl", kept=point.log_text if point else None) if main else None
    result = train(
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
