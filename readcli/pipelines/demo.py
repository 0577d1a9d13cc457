"""`readcli demo`: the paper's low-resource claim in miniature, offline, decided by a fair protocol.

Build the requested tasks (grounding `tlg`, summarization `vls`), run the protocol of docs/demo.md
over worker processes (prepare and pretrain, choose each method's learning rate on dev, score the
choice on test), compare every method with READ-PVLA, and write the tables and the plot.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from readcli.demo.execute import run_protocol
from readcli.demo.methods import DEMO_METHODS, default_methods, demo_method
from readcli.demo.report import text_table, world_table
from readcli.demo.results import mastery_line, write_outputs
from readcli.demo.tlg import GroundingDemo
from readcli.demo.vls.config import vls_config
from readcli.demo.vls.task import DEFAULT_METHODS, VLS_METHODS, VLSTask
from readcli.errors import InvalidValueError, choices_text
from readcli.fileio import cache_dir
from readcli.threads import check_threads, usable_cores

TASKS: tuple[str, ...] = ("tlg", "vls", "all")
# learning-rate grids for a task that does not define its own (same number of points for all)
DEFAULT_GRID = (1e-3, 3e-3, 1e-2)
DEFAULT_FULL_GRID = (1e-4, 3e-4, 1e-3)


@dataclass(frozen=True)
class DemoRequest:
    """What to run: tasks, profile (quick, default, full), seeds, output, optional method subset."""

    out: Path
    task: str = "all"
    quick: bool = False
    full: bool = False
    seeds: int = 5
    methods: tuple[str, ...] = ()  # empty: every default row (every row with full)
    cache: Path | None = None  # None: $READCLI_CACHE/demo or ~/.cache/readcli/demo
    jobs: int | None = None  # runs at a time; None: the usable cores, plus a spare while others are busy
    threads: int | None = None  # intra-op threads per worker; None: 1
    first_seed: int = 0
    resamples: int = 10_000

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidValueError(f"--task {self.task!r} is invalid: choose one of {choices_text(TASKS)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 50:
            raise InvalidValueError(f"--seeds {self.seeds!r} is invalid: use an integer in 1..50")
        if self.quick and self.full:
            raise InvalidValueError("--quick and --full exclude each other: choose one")
        if self.jobs is not None and not 1 <= self.jobs <= 256:
            raise InvalidValueError(f"--jobs {self.jobs} is invalid: use an integer in 1..256")


@dataclass
class DemoResult:
    tables: list[Any]  # list[readcli.demo.report.WorldTable]
    sources: dict[str, Any]  # task -> tuple[SourceReport, ...]
    source_only: dict[str, dict[str, dict[str, float]]]  # task -> world -> metric -> mean
    paths: tuple[Path, ...]
    seconds: float
    jobs: int
    threads: int
    extra: dict[str, Any] = field(default_factory=dict)


def demo_cache() -> Path:
    """`$READCLI_CACHE/demo`, else `~/.cache/readcli/demo` (the backbone presets' cache root)."""
    return cache_dir() / "demo"


def _build_tasks(request: DemoRequest, scratch: Path) -> dict[str, Any]:
    unknown = [m for m in request.methods if m not in DEMO_METHODS]
    if unknown:
        raise InvalidValueError(
            f"unknown demo method {unknown[0]!r}: choose from {choices_text(DEMO_METHODS)}"
        )
    profile = "quick" if request.quick else "default"
    names = ("tlg", "vls") if request.task == "all" else (request.task,)
    tasks: dict[str, Any] = {}
    if "tlg" in names:
        methods = request.methods or default_methods(request.full)
        tasks["tlg"] = GroundingDemo(profile, scratch, methods)
    if "vls" in names:
        tasks["vls"] = _vls_task(request, profile)
    return tasks


def _vls_task(request: DemoRequest, profile: str) -> Any:
    """The summarization task (readcli/demo/vls/): every row a vision-guided BART can take."""
    if request.methods:
        keys = tuple(m for m in request.methods if m in VLS_METHODS)
        if not keys:
            valid = choices_text(VLS_METHODS)
            raise InvalidValueError(f"no --method row runs on the summarization task: choose from {valid}")
    else:
        keys = tuple(VLS_METHODS) if request.full else tuple(DEFAULT_METHODS)
    return VLSTask(config=vls_config(profile), method_keys=keys)


def _grids(task: Any) -> dict[str, tuple[float, ...]]:
    own = getattr(task, "lr_grid", None)
    if own is not None:
        return {m: tuple(own(m)) for m in task.methods()}
    return {m: DEFAULT_FULL_GRID if demo_method(m).full_lr else DEFAULT_GRID for m in task.methods()}


def run(request: DemoRequest, progress: Callable[[Any], None] | None = None) -> DemoResult:
    """Run the protocol for the requested tasks and write DIR/results.{md,json} and the plot."""
    started = time.perf_counter()
    threads = check_threads(request.threads) if request.threads is not None else 1
    jobs = request.jobs if request.jobs is not None else max(1, usable_cores() // threads)
    spare = request.jobs is None  # an explicit --jobs is exactly that many (readcli.cpu_share)
    cache = request.cache if request.cache is not None else demo_cache()
    seeds = list(range(request.first_seed, request.first_seed + request.seeds))
    request.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".demo-runs-", dir=request.out))
    try:
        tasks = _build_tasks(request, scratch)
        grids = {name: _grids(task) for name, task in tasks.items()}
        outcome = run_protocol(
            tasks, grids, seeds, cache, jobs=jobs, threads=threads, spare=spare, progress=progress
        )
        source_only = _source_only(tasks, cache)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tables = [
        world_table(task, world, outcome, seeds, resamples=request.resamples)
        for task in tasks.values()
        for world in task.worlds
    ]
    extra = {
        "request": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(request).items()},
        "seeds": seeds,
        "grids": grids,
        "jobs": jobs,
        "spare_worker": spare and jobs > 1,
        "spare_runs": outcome.spare_runs,
        "threads": threads,
        "protocol_seconds": outcome.seconds,
    }
    seconds = time.perf_counter() - started
    paths = write_outputs(request.out, tables, outcome, source_only, {**extra, "seconds": seconds})
    return DemoResult(tables, outcome.sources, source_only, paths, seconds, jobs, threads, extra)


def report_lines(result: DemoResult) -> tuple[list[str], list[str]]:
    """What `readcli demo` prints: each source backbone's mastery line, and each world's text table."""
    mastery = [mastery_line(name, report) for name, reports in result.sources.items() for report in reports]
    return mastery, [text_table(table) for table in result.tables]


def _source_only(tasks: dict[str, Any], cache: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Each task's pretrained backbone on each world's test split, unadapted (after every choice)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, task in tasks.items():
        score = getattr(task, "source_only", None)
        if score is None:
            continue
        task.prepare(cache)  # in this process: the workers prepared their own copies; all cached now
        out[name] = {}
        for world in task.worlds:
            scores = score(world, "test")
            out[name][world] = {m: float(v.mean()) for m, v in scores.per_example.items()}
    return out
