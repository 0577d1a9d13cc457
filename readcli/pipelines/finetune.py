"""`readcli finetune`: adapt a frozen backbone to a dataset with one method, keep the best adapter bundle.

RUN_DIR holds: run.json (the request, so `--resume RUN_DIR` needs nothing else), checkpoints/ (every
epoch, for resume), best/ (the best adapter bundle), best_val_preds.jsonl, metrics.json and
train_log.jsonl. Every file is written atomically. See docs/training.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, choices_text, reject_unknown_keys
from readcli.fileio import atomic_write_json, atomic_write_text, write_failure
from readcli.training.loop import ProgressCallback, TrainSettings

log = logging.getLogger(__name__)

TASKS = ("tlg", "vls")
# the metric that picks the best epoch when the request keeps the loop's default
SELECT_METRICS: dict[str, str] = {"tlg": "MR-full-mAP", "vls": "rougeL"}
# the backbone used when the request keeps another task's default
DEFAULT_BACKBONES: dict[str, str] = {"tlg": "moment-detr-clip", "vls": "bart-base-vg"}
RUN_FILE = "run.json"
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
    def from_json(cls, data: dict[str, Any], source: Path) -> FinetuneRequest:
        try:
            reject_unknown_keys(cls, data, "run fields")
        except InvalidValueError as err:
            raise InputFileError(f"{source}: {err}") from None
        values = dict(data)
        values["train"] = TrainSettings(**values.get("train", {}))
        return cls(**values)


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
    run_dir: str | Path, *, epochs: int | None = None, device: str | None = None
) -> FinetuneRequest:
    """The request saved in RUN_DIR, optionally with more epochs or another device."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise InputFileError(
            f"cannot resume: {path} not found (is {run_dir} a readcli finetune run directory?)"
        )
    try:
        request = FinetuneRequest.from_json(json.loads(path.read_text(encoding="utf-8")), path)
    except (json.JSONDecodeError, TypeError) as err:
        raise InputFileError(f"cannot resume: {path} is not a valid run file ({err})") from None
    train = request.train
    if epochs is not None:
        train = replace(train, epochs=epochs)
    if device is not None:
        train = replace(train, device=device)
    return replace(request, out=str(run_dir), train=train)


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
    if not resume and (out / RUN_FILE).exists():
        raise InvalidValueError(
            f"--out {out} already holds a run: continue it with --resume {out}, or choose another --out"
        )
    return out


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
        request = with_task_defaults(request)
        pvla = _pvla_settings(request)  # validates before any heavy work
        run: Any
        if request.task == "vls":
            from readcli.pipelines._summarization_run import prepare_summarization_run

            run = prepare_summarization_run(request, pvla)
        else:
            run = prepare_grounding_run(request, pvla)
        job.barrier()  # every rank has checked that --out holds no run before rank 0 writes one
        if job.is_main:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as err:  # e.g. --out under a folder the user cannot write
                raise write_failure(out / RUN_FILE, err) or err from None
            atomic_write_json(out / RUN_FILE, request.to_json())
        return replace(run.train(out, resume=resume, progress=progress), rank=job.rank)


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

    On resume, records from epochs after the checkpoint are dropped first (they will be replayed).
    """

    def __init__(self, path: Path, *, keep_epochs_upto: int | None) -> None:
        self.path = path
        if keep_epochs_upto is not None and path.is_file():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("epoch", 0) <= keep_epochs_upto
            ]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        elif keep_epochs_upto is None:
            atomic_write_text(path, "")

    def __call__(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


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

    def train(self, out: Path, *, resume: bool, progress: ProgressCallback | None) -> FinetuneResult:
        return train_and_record(
            self.model,
            self.task,
            self.request,
            out,
            resume=resume,
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
    resume: bool,
    progress: ProgressCallback | None,
    save_best: Callable[[Any, Any, int], None],
    skipped_missing: int,
) -> FinetuneResult:
    """Run the loop for any task, keep its log and metrics.json in RUN_DIR, and summarise the run.

    Under several processes only rank 0 keeps the log and writes metrics.json.
    """
    from readcli.adapters import count_parameters
    from readcli.training.checkpoint import latest_checkpoint
    from readcli.training.distributed import current
    from readcli.training.loop import train

    main = current().is_main
    checkpoint = latest_checkpoint(out) if resume else None
    epochs_done = int(checkpoint.name.split("-")[1]) if checkpoint is not None else None
    log_file = (
        JsonlLog(out / "train_log.jsonl", keep_epochs_upto=epochs_done if resume else None) if main else None
    )
    result = train(
        model, task, request.train, out,
        resume=resume, progress=progress, save_best=save_best, write_log=log_file,
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
