"""`readcli finetune`: adapt a frozen backbone to a dataset with one method, keep the best adapter bundle.

RUN_DIR holds: run.json (the request, so `--resume RUN_DIR` needs nothing else), checkpoints/ (every
epoch, for resume), best/ (the best adapter bundle), best_val_preds.jsonl, metrics.json and
train_log.jsonl. Every file is written atomically. A resume checks the whole folder, and that its
options agree with run.json, before it writes anything (readcli.training.run_folder); a fresh run
that fails before its first checkpoint removes what it created. See docs/training.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from readcli.alignment import PVLASettings
from readcli.errors import InvalidValueError
from readcli.pipelines._grounding_run import prepare_grounding_run
from readcli.pipelines._summarization_run import prepare_summarization_run
from readcli.pipelines.finetune_record import FinetuneResult
from readcli.pipelines.finetune_request import (
    SummarizationFinetuneRequest,
    TaskRequest,
    apply_changes,
    read_run_file,
)
from readcli.pipelines.run_dir import (
    RUN_FILE,
    check_fresh_out,
    check_resume_settings,
    removed_on_failure,
    start_run_dir,
    with_absolute_paths,
)
from readcli.training.distributed import process_group
from readcli.training.loop import ProgressCallback
from readcli.training.resume_point import ResumePoint
from readcli.training.run_folder import inspect_run_folder


def resume_request(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    device: str | None = None,
    changes: dict[str, Any] | None = None,
) -> TaskRequest:
    """The request saved in RUN_DIR, with more epochs or another device, and `changes` (options given
    again on resume, by field name; `run` refuses those that differ from the recorded ones)."""
    path = Path(run_dir) / RUN_FILE
    given = {
        **(changes or {}),
        **{k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None},
    }
    return apply_changes(read_run_file(path), given, out=run_dir, source=path)


def _check_request(request: TaskRequest, *, resume: bool) -> Path:
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"--out {out} exists and is not a directory")
    if not resume:
        check_fresh_out(out)
    return out


def check_resume(request: TaskRequest) -> ResumePoint:
    """What `run(request, resume=True)` checks before loading anything heavy (no model: the tensors'
    fit is checked once the model is built)."""
    out = _check_request(request, resume=True)
    return _resume_point(with_absolute_paths(request), out)


def _resume_point(request: TaskRequest, out: Path) -> ResumePoint:
    """The run folder checked whole, and the request checked against its run.json: nothing written."""
    recorded = with_absolute_paths(read_run_file(out / RUN_FILE))
    check_resume_settings(request.to_json(), recorded.to_json(), out / RUN_FILE)
    return inspect_run_folder(out, request.train.epochs, recorded_epochs=recorded.train.epochs)


def run(
    request: TaskRequest, *, resume: bool = False, progress: ProgressCallback | None = None
) -> FinetuneResult:
    """Fine-tune, evaluating every epoch; the best bundle, predictions and metrics land in RUN_DIR.

    Under torchrun or accelerate launch (WORLD_SIZE > 1) every process calls this alike: each joins
    the process group, trains its share of every global batch, and only rank 0 writes RUN_DIR
    (docs/distributed.md).
    """
    with process_group(request.train.device) as job:
        out = _check_request(request, resume=resume)
        request = with_absolute_paths(request)
        pvla = _pvla_settings(request)
        point = _resume_point(request, out) if resume else None
        run: Any
        if isinstance(request, SummarizationFinetuneRequest):
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


def _pvla_settings(request: TaskRequest) -> PVLASettings | None:
    if not request.pvla:
        return None
    mode: Any = request.mass_mode  # checked by the request (readcli.options.alignment)
    return PVLASettings(weight=request.pvla_weight, mass=request.mass, mass_mode=mode, tau=request.tau)
