"""`readcli evaluate`: metrics of a prediction file, as a table or as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from readcli.cli.common import console, err_console, error_boundary

_TITLES = {"qvhighlights": "QVHighlights", "youtube": "YouTube Highlights", "tvsum": "TVSum"}


@error_boundary
def evaluate(
    task: Annotated[
        str, typer.Option("--task", help="tlg (temporal language grounding) or vls (summarization).")
    ],
    preds: Annotated[
        Path, typer.Option("--preds", help="Predictions: jsonl (tlg), or summaries one per line (vls).")
    ],
    gt: Annotated[
        Path | None, typer.Option("--gt", help="tlg: the ground-truth jsonl (a dataset's val file).")
    ] = None,
    refs: Annotated[
        Path | None, typer.Option("--refs", help="vls: reference summaries, one per line.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="tlg: qvhighlights (default), youtube or tvsum.")
    ] = None,
    summary_format: Annotated[
        str,
        typer.Option("--format", help="vls: auto, plain (line by line) or how2 ('<video_id> <text>' lines)."),
    ] = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (QVHighlights: the official layout).")
    ] = False,
) -> None:
    """Score predictions: QVHighlights / YouTube Highlights / TVSum metrics, or ROUGE for summaries."""
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.evaluate import EvaluateRequest
    from readcli.pipelines.evaluate import evaluate as run

    result = run(EvaluateRequest(task, preds, gt, refs, dataset, summary_format))
    for line in result.warnings:
        err_console.print(f"warning: {line}", markup=False)
    if as_json:
        typer.echo(json.dumps(_json_safe(result.report), indent=2))
        return
    what = (
        "summary pairs"
        if result.task == "vls"
        else ("queries" if result.dataset == "qvhighlights" else "videos")
    )
    title = f"{_TITLES.get(result.dataset, 'ROUGE F1 (' + result.dataset + ')')}: {result.count} {what}"
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
    from rich.table import Table

    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, "n/a" if math.isnan(value) else f"{value:.2f}")
    console.print(table)


def _json_safe(value: Any) -> Any:
    """NaN (an empty length bucket) becomes null: strict JSON has no NaN."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
