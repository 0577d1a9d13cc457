"""Run the protocol's jobs, in worker processes with one intra-op thread each (docs/performance.md:
on a small model, processes beat threads, and one thread per process never spins waiting for a core
another process holds).

Workers are forked after the tasks are built, so they inherit them; each prepares a task (reusing
the cache the first `prepare` job wrote) before its first run of that task. With jobs = 1 every job
runs in this process, in the same order, with the same results.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from readcli.cpu_share import BUSY_CORES, OtherCpu, children_of
from readcli.demo.contract import DemoTask, RunScores, SourceReport
from readcli.demo.protocol import Job, choose_lr, selection_jobs, test_jobs

_TASKS: dict[str, DemoTask] = {}
_CACHE: list[Path] = []
_PREPARED: set[str] = set()


@dataclass(frozen=True)
class ProtocolEvent:
    """Progress: a stage line, or a finished run with counts and the estimated time left."""

    kind: Literal["stage", "run"]
    message: str
    done: int = 0
    total: int = 0
    eta: float | None = None  # seconds


@dataclass
class ProtocolOutcome:
    sources: dict[str, tuple[SourceReport, ...]] = field(default_factory=dict)
    dev: dict[Job, RunScores] = field(default_factory=dict)
    test: dict[Job, RunScores] = field(default_factory=dict)
    chosen: dict[tuple[str, str, str], float] = field(default_factory=dict)
    seconds: float = 0.0
    spare_runs: int = 0  # runs started on the spare worker while other processes were busy


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _prepare(name: str) -> tuple[str, tuple[SourceReport, ...]]:
    reports = _TASKS[name].prepare(_CACHE[0])
    _PREPARED.add(name)
    return name, reports


def _run(job: Job) -> tuple[Job, RunScores]:
    if job.task not in _PREPARED:  # a worker's first run of this task: everything is cached by now
        _prepare(job.task)
    scores = _TASKS[job.task].run(job.world, job.method, job.lr, job.seed, job.split)
    return job, scores


class _Inline(Executor):
    """jobs = 1: each submitted call runs at once in this process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # re-raised by .result(), as a pool would
            future.set_exception(error)
        return future


def run_protocol(
    tasks: Mapping[str, DemoTask],
    grids: Mapping[str, Mapping[str, Sequence[float]]],
    seeds: Sequence[int],
    cache: Path,
    *,
    jobs: int = 1,
    threads: int = 1,
    spare: bool = False,
    other_cpu: OtherCpu | None = None,
    progress: Callable[[ProtocolEvent], None] | None = None,
) -> ProtocolOutcome:
    """Prepare every task, run selection on dev, choose per cell, then score the choice on test.

    jobs runs at a time; with `spare`, one more worker waits and runs too while other processes use
    at least half a core (readcli.cpu_share), so a shared CPU costs the demo less of its share.
    """
    emit = progress or (lambda event: None)
    _TASKS.clear()
    _TASKS.update(tasks)
    _CACHE[:] = [cache]
    _PREPARED.clear()
    _init_worker(threads)
    started = time.perf_counter()
    outcome = ProtocolOutcome()
    planned = {
        name: selection_jobs(name, task.worlds, task.methods(), grids[name], seeds)
        for name, task in tasks.items()
    }
    total = sum(
        len(p) + len(t.worlds) * len(t.methods()) * len(seeds)
        for p, t in zip(planned.values(), tasks.values(), strict=True)
    )
    remaining = {name: {} for name in tasks}  # type: dict[str, dict[tuple[str, str, str], int]]
    for name, jobs_of in planned.items():
        for job in jobs_of:
            remaining[name][job.cell] = remaining[name].get(job.cell, 0) + 1
    spare = spare and jobs > 1  # one worker runs inline: nothing to hold in reserve
    workers = jobs + 1 if spare else jobs
    executor: Executor = (
        ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(threads,),
        )
        if workers > 1
        else _Inline()
    )
    share = _Share(jobs, other_cpu or OtherCpu()) if spare else None
    waiting: deque[tuple[Callable[[Any], Any], Any]] = deque()
    pending: set[Future[Any]] = set()

    def fill() -> None:
        cap = share.cap() if share is not None else jobs
        while waiting and len(pending) < cap:
            fn, arg = waiting.popleft()
            pending.add(executor.submit(fn, arg))
            if share is not None and len(pending) > jobs:
                outcome.spare_runs += 1

    emit(
        ProtocolEvent(
            "stage",
            f"preparing {', '.join(tasks)}: worlds and source pretraining (cached after the first run)",
        )
    )
    waiting.extend((_prepare, name) for name in tasks)
    fill()
    run_started: float | None = None
    try:
        while pending:
            done, still = wait(pending, return_when=FIRST_COMPLETED)
            pending.clear()
            pending.update(still)
            for future in done:
                result = future.result()
                if isinstance(result[0], str):  # a task is prepared: its selection runs can start
                    name, reports = result
                    outcome.sources[name] = reports
                    for report in reports:
                        emit(ProtocolEvent("stage", _source_line(name, report)))
                    emit(
                        ProtocolEvent(
                            "stage", f"{name}: selecting learning rates on dev ({len(planned[name])} runs)"
                        )
                    )
                    run_started = run_started or time.perf_counter()
                    waiting.extend((_run, job) for job in planned[name])
                    continue
                job, scores = result
                if job.split == "dev":
                    outcome.dev[job] = scores
                    remaining[job.task][job.cell] -= 1
                    if remaining[job.task][job.cell] == 0:
                        cell_dev = {j: s for j, s in outcome.dev.items() if j.cell == job.cell}
                        lr = choose_lr(cell_dev, tasks[job.task].metrics[0])[job.cell]
                        outcome.chosen[job.cell] = lr
                        waiting.extend((_run, j) for j in test_jobs(job.cell, lr, seeds))
                else:
                    outcome.test[job] = scores
                count = len(outcome.dev) + len(outcome.test)
                elapsed = time.perf_counter() - (run_started or started)
                eta = elapsed / count * (total - count) if count else None
                emit(ProtocolEvent("run", job.label(), count, total, eta))
            fill()
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    outcome.seconds = time.perf_counter() - started
    emit(ProtocolEvent("stage", f"all {total} runs done in {outcome.seconds:.0f} s"))
    return outcome


class _Share:
    """How many runs may be in flight: `jobs`, plus the spare worker while others keep a core busy."""

    def __init__(self, jobs: int, other_cpu: OtherCpu) -> None:
        self.jobs = jobs
        self.other_cpu = other_cpu
        self.busy = False

    def cap(self) -> int:
        own = {os.getpid()} | children_of(os.getpid())  # this process and its pool's workers
        others = self.other_cpu.sample(own)
        if others is not None:  # else keep the last decision until a whole window is measured
            self.busy = others >= BUSY_CORES
        return self.jobs + 1 if self.busy else self.jobs


def _source_line(name: str, report: SourceReport) -> str:
    metrics = ", ".join(f"{k} {v:.1f}" for k, v in report.metrics.items())
    how = "reused from the cache" if report.reused else f"pretrained in {report.seconds:.0f} s"
    return f"{name}: source {report.architecture} {how}; held-out source queries: {metrics}"
