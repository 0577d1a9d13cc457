"""`readcli demo`: the built-in offline benchmark (pipelines/demo.py, docs/demo.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from readcli.cli.common import console, error_boundary

# The rows' keys, written here so `demo --help` imports no torch; a test holds it equal to
# readcli.demo.methods.DEMO_METHODS.
METHOD_NAMES = (
    "full, partial, bias, proj, lora, prompt, adapter, read, read-pvla, read-pvla-fullmass, read-pvla-gru, "
    "read-pvla-lstm, read-cosine, read-l2, read-pvla-w0.3-m0.3, read-pvla-w0.3-m0.8, read-pvla-w3-m0.3, "
    "read-pvla-w3-m0.8, umt-read-pvla, ia3"
)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@error_boundary
def demo(
    task: Annotated[str, typer.Option("--task", help="tlg (grounding), vls (summarization) or all.")] = "all",
    quick: Annotated[
        bool, typer.Option("--quick", help="The whole path in under a minute; numbers mean nothing.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Add every ablation and the PVLA weight x mass grid.")
    ] = False,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Paired seeds per method (default 5; 2 with --quick).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where results.md/.json and the plot go.")] = Path(
        "demo-results"
    ),
    methods: Annotated[
        list[str] | None,
        typer.Option("--method", help=f"Only this row (repeatable; keep read-pvla): {METHOD_NAMES}."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", help="Runs at a time (default: the cores, +1 while others keep a core busy)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Intra-op threads per worker (default 1).")
    ] = None,
) -> None:
    """Pretrain small backbones on synthetic source worlds, adapt every method on every target world with
    its learning rate chosen on dev, and compare each with READ-PVLA on test (paired bootstrap)."""
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.demo import DemoRequest, run

    request = DemoRequest(
        out=out, task=task, quick=quick, full=full, seeds=seeds if seeds is not None else (2 if quick else 5),
        methods=tuple(methods or ()), jobs=jobs,
        threads=threads,
    )  # fmt: skip
    if sys.stdout.isatty():
        # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
        with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
            handle = bar.add_task("starting", total=None)
            result = run(request, progress=lambda event: _show(bar, handle, event))
    else:
        result = run(request, progress=_PlainLines())
    _render(result)


def _show(bar: Any, handle: Any, event: Any) -> None:
    if event.kind == "stage":
        bar.console.print(event.message)
    else:
        eta = "" if event.eta is None else f", about {event.eta / 60:.1f} min left"
        bar.update(handle, description=f"{event.message[:48]}{eta}", completed=event.done, total=event.total)


class _PlainLines:
    """Not a terminal: one line per stage and one every 10 % of the runs (no bar to redraw)."""

    def __init__(self) -> None:
        self.next_tenth = 1
        self.started = time.perf_counter()

    def __call__(self, event: Any) -> None:
        if event.kind == "stage":
            print(f"[{time.perf_counter() - self.started:6.0f} s] {event.message}", flush=True)
        elif event.total and event.done * 10 >= self.next_tenth * event.total:
            self.next_tenth = event.done * 10 // event.total + 1
            eta = "" if event.eta is None else f", about {event.eta / 60:.1f} min left"
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:6.0f} s] runs {event.done}/{event.total}{eta}", flush=True)


def _render(result: Any) -> None:
    # lazy: the pipeline (torch, the demo package) is loaded by the command already; not by --help
    from readcli.pipelines.demo import report_lines

    mastery, tables = report_lines(result)
    for line in mastery:
        console.print(line, highlight=False, soft_wrap=True)
    for table in tables:
        console.print("", highlight=False)
        console.print(table, highlight=False, markup=False, soft_wrap=True)
    console.print(
        "(H): the verdict survives the Holm correction across the rows of its world", highlight=False
    )
    console.print(
        f"{result.jobs} worker(s) x {result.threads} thread(s){_spare(result.extra)}; wrote "
        f"{', '.join(str(p) for p in result.paths)} in {result.seconds:.0f} s",
        highlight=False,
        soft_wrap=True,
    )


def _spare(extra: dict[str, Any]) -> str:
    return f" (+1 spare: {extra['spare_runs']} runs)" if extra.get("spare_worker") else ""
