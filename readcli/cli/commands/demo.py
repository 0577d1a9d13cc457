"""`readcli demo`: the built-in offline benchmark (pipelines/demo.py, docs/demo.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from readcli.cli.common import console, error_boundary


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@error_boundary
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="The CI budget: smaller world, fewer epochs.")
    ] = False,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per method (mean ± std over them).")] = 5,
    out: Annotated[Path, typer.Option("--out", help="Where results.md/.json and the plot go.")] = Path(
        "demo-results"
    ),
    methods: Annotated[
        list[str] | None, typer.Option("--method", help="Only this row (repeatable; default: every row).")
    ] = None,
) -> None:
    """Pretrain a small Moment-DETR on a synthetic world, adapt it with every method, print the table."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from readcli.pipelines.demo import DemoRequest, run

    request = DemoRequest(out=out, quick=quick, seeds=seeds, methods=tuple(methods or ()))
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        result = run(request, progress=lambda event: _show(bar, task, event))
    _render(result)


def _show(bar: Any, task: Any, event: Any) -> None:
    if event.stage == "reused":
        console.print(f"[green]{event.label}[/green]")
    elif event.stage == "pretrain" and event.loop is not None and event.loop.kind == "eval":
        bar.update(
            task, description="pretraining (source)", completed=event.loop.epoch, total=event.loop.epochs
        )
    elif event.stage in ("adapt", "run_done") and event.loop is None:
        bar.update(task, description=f"adapting: {event.label}", completed=event.run, total=event.runs)


def _render(result: Any) -> None:
    from rich.table import Table

    from readcli.demo.report import SHORT, cell, params_text
    from readcli.demo.runner import REPORTED

    table = Table(title=f"readcli demo ({result.profile}): target domain, low-resource")
    for name in ("method", "trainable params (%)", *(SHORT[m] for m in REPORTED)):
        table.add_column(name, justify="left" if name == "method" else "right")
    table.add_row("source backbone, no adaptation", "0", *(f"{result.source_only[m]:.2f}" for m in REPORTED))
    for row in result.rows:
        style = "bold red" if row.group == "ours" else None
        table.add_row(row.label, params_text(row), *(cell(row, m) for m in REPORTED), style=style)
    console.print(table)
    reuse = "reused" if result.pretrain_reused else "trained and cached"
    console.print(f"pretrained backbone {reuse}: {result.backbone_dir}")
    console.print(f"wrote {', '.join(str(p) for p in result.paths)} in {result.seconds:.0f} s")
