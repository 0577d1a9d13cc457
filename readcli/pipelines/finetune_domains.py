"""`readcli finetune --dataset youtube|tvsum --domain all`: one run per domain, and the per-domain table.

YouTube Highlights and TVSum are trained and evaluated per domain (the paper's tables 1 and 2, as
UMT does). `run_domains` finds the domains of the train split and runs `finetune.run` for each into
OUT/<domain>/ (an ordinary run directory). A domain whose run finished (OUT/<domain>/metrics.json
covers the requested epochs) is skipped and its metrics reused, so rerunning the command continues
where it stopped; an unfinished domain continues with `resume=True`. OUT/domains_request.json keeps
the request (for `--resume OUT`), OUT/domains.json the table so far (written after every domain,
atomically). docs/umt.md.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from readcli.data.layout import open_layout
from readcli.data.readers import load_annotations
from readcli.data.youtube_tvsum import domains
from readcli.errors import InputFileError, InvalidValueError
from readcli.fileio import atomic_write_json
from readcli.pipelines import finetune
from readcli.pipelines.finetune_request import (
    GroundingFinetuneRequest,
    TaskRequest,
    apply_changes,
    read_run_file,
)
from readcli.pipelines.run_dir import RUN_FILE, check_resume_settings, removed_on_failure, with_absolute_paths
from readcli.records import read_json_file, validate
from readcli.training.distributed import env_dist
from readcli.training.highlight_task import average_metric, check_dataset
from readcli.training.loop import ProgressCallback
from readcli.training.run_records import MetricsRecord
from readcli.training.train_checkpoint import CHECKPOINTS, LATEST

log = logging.getLogger(__name__)

REQUEST_FILE = "domains_request.json"
TABLE_FILE = "domains.json"
DomainCallback = Callable[[str, int, int], None]  # (domain, index, total) before each domain


@dataclass(frozen=True)
class DomainRow:
    """One domain's outcome: its metric at the best epoch, and whether it was reused from disk."""

    domain: str
    value: float
    best_epoch: int | None
    reused: bool


@dataclass(frozen=True)
class DomainsResult:
    out: Path
    dataset: str
    metric: str  # "mAP" (YouTube Highlights) or "top5-mAP" (TVSum)
    rows: list[DomainRow]
    average: float
    rank: int = 0  # under several processes only rank 0 wrote OUT and should render the table

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "domains": {r.domain: {"value": r.value, "best_epoch": r.best_epoch} for r in self.rows},
            "average": self.average,
        }


def is_domains_dir(path: str | Path) -> bool:
    return (Path(path) / REQUEST_FILE).is_file()


def is_all_domains(request: TaskRequest) -> bool:
    """Whether `request` asks for one run per domain (--domain all): `run_domains` runs it."""
    return isinstance(request, GroundingFinetuneRequest) and (request.domain or "").lower() == "all"


def resume_domains_request(
    out: str | Path,
    *,
    epochs: int | None = None,
    device: str | None = None,
    changes: dict[str, Any] | None = None,
) -> TaskRequest:
    """The request saved in OUT by a `--domain all` run, with more epochs or another device, and
    `changes` (options given again; `run_domains` refuses those that differ from the recorded ones)."""
    path = Path(out) / REQUEST_FILE
    given = {
        **(changes or {}),
        **{k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None},
    }
    return apply_changes(read_run_file(path), given, out=out, source=path)


def train_domains(data: str) -> list[str]:
    """The domains present in DIR's train split, sorted (UMT's per-domain runs)."""
    layout = open_layout(data)
    names = domains(load_annotations(layout.split_file("train"), fmt=layout.format))
    if not names:
        raise InvalidValueError(f"--domain all: the train split of {data} has no domains (not YouTube/TVSum)")
    return names


def run_domains(
    request: TaskRequest,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    on_domain: DomainCallback | None = None,
) -> DomainsResult:
    """Train and evaluate every domain of the train split into OUT/<domain>/; see the module docstring."""
    if not isinstance(request, GroundingFinetuneRequest):  # --domain is refused for vls before this
        raise InvalidValueError(f"--domain all does not apply to --task {request.task}")
    if request.dataset is None:
        raise InvalidValueError("--domain all needs --dataset youtube or --dataset tvsum")
    dataset = check_dataset(request.dataset)
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"--out {out} exists and is not a directory")
    if (out / RUN_FILE).exists():
        raise InvalidValueError(
            f"--out {out} holds a single-domain run; choose another --out for --domain all"
        )
    main = env_dist().is_main  # under torchrun every rank runs each domain; only rank 0 writes
    names = train_domains(request.data)
    base = replace(request, domain="all", train=replace(request.train, select_metric=average_metric(dataset)))
    base = with_absolute_paths(base)
    prefix = average_metric(dataset).removesuffix("-avg")
    _check_against_recorded(base, out, names, prefix, resume=resume)
    rows: list[DomainRow] = []
    keep = lambda: any((out / name / CHECKPOINTS / LATEST).exists() for name in names)  # noqa: E731
    owned = (REQUEST_FILE, TABLE_FILE, *names)
    with removed_on_failure(out, enabled=main and not resume, names=owned, keep=keep):
        if main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / REQUEST_FILE, base.to_json())
        for index, domain in enumerate(names):
            if on_domain is not None and main:  # under torchrun: announced once
                on_domain(domain, index, len(names))
            rows.append(_one_domain(base, domain, out / domain, prefix, resume=resume, progress=progress))
            _write_table(out, dataset, prefix, rows, write=main)
    return replace(_write_table(out, dataset, prefix, rows, write=main), rank=env_dist().rank)


def _check_against_recorded(
    base: GroundingFinetuneRequest, out: Path, names: list[str], prefix: str, *, resume: bool
) -> None:
    """Before anything is written: the request agrees with OUT's recorded one (a rerun or --resume
    continues it), and on resume every unfinished domain's folder passes the resume checks."""
    recorded_path = out / REQUEST_FILE
    if recorded_path.exists():
        recorded = with_absolute_paths(read_run_file(recorded_path))
        check_resume_settings(base.to_json(), recorded.to_json(), recorded_path)
    if not resume:
        return
    for domain in names:
        run_dir = out / domain
        finished = _finished_metrics(run_dir, base.train.epochs, f"{prefix}-{domain}")
        if (run_dir / RUN_FILE).is_file() and finished is None:
            finetune.check_resume(replace(base, domain=domain, out=str(run_dir)))


def _one_domain(
    base: GroundingFinetuneRequest,
    domain: str,
    run_dir: Path,
    prefix: str,
    *,
    resume: bool,
    progress: ProgressCallback | None,
) -> DomainRow:
    key = f"{prefix}-{domain}"
    finished = _finished_metrics(run_dir, base.train.epochs, key)
    if finished is not None:
        log.info("domain %s: finished run in %s reused", domain, run_dir)
        return DomainRow(domain, float(finished["best"][key]), finished.get("best_epoch"), True)
    request = replace(base, domain=domain, out=str(run_dir))
    continuing = (run_dir / RUN_FILE).is_file()
    if continuing and not resume:
        raise InvalidValueError(
            f"{run_dir} holds an unfinished run of domain {domain}: continue with --resume {run_dir.parent}"
        )
    result = finetune.run(request, resume=continuing, progress=progress)
    return DomainRow(domain, float(result.best_metrics[key]), result.best_epoch, False)


def _finished_metrics(run_dir: Path, epochs: int, key: str | None = None) -> dict[str, Any] | None:
    """metrics.json of a run that trained at least `epochs` epochs (and has a value for `key`), else None.

    A metrics.json that does not pass its schema is not finished: the domain's resume then refuses
    it with the reason (readcli.training.run_folder).
    """
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = read_json_file(path)
        record = validate(MetricsRecord, metrics, str(path))
    except InputFileError:
        return None
    if len(record.history) < epochs or (key is not None and record.best.get(key) is None):
        return None
    return dict(metrics)


def _write_table(
    out: Path, dataset: str, prefix: str, rows: list[DomainRow], *, write: bool
) -> DomainsResult:
    average = round(statistics.fmean(r.value for r in rows), 2) if rows else float("nan")
    result = DomainsResult(out=out, dataset=dataset, metric=prefix, rows=list(rows), average=average)
    if write:
        atomic_write_json(out / TABLE_FILE, result.to_json())
    return result
