"""`readcli ground`: moments and a saliency sparkline per query, for a video of any length."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from readcli.cli.common import console, err_console, error_boundary, threads_option, use_threads
from readcli.cli.progress import plain_progress

if TYPE_CHECKING:
    from rich.table import Table

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """Unicode blocks, one per value, or per bin of values (bin means) when there are more than `width`."""
    if not values or width < 1:
        return ""
    n = len(values)
    bins = min(n, width)
    means = []
    for b in range(bins):
        chunk = values[b * n // bins : (b + 1) * n // bins]  # never empty: bins <= n
        means.append(sum(chunk) / len(chunk))
    low, high = min(means), max(means)
    if high == low:
        return BLOCKS[len(BLOCKS) // 2 - 1] * bins
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((m - low) / (high - low) * top)] for m in means)


def _table(query: Any) -> Table:
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("rank", "start (s)", "end (s)", "score"):
        table.add_column(column, justify="right")
    for rank, (start, end, score) in enumerate(query.moments, start=1):
        table.add_row(str(rank), f"{start:.1f}", f"{end:.1f}", f"{score:.4f}")
    return table


def _render(result: Any) -> None:
    hit = "cached features" if result.cache_hit else "features extracted"
    console.print(
        f"{result.video}: {result.duration:.1f} s, {result.n_clips} clips of {result.clip_len:g} s, "
        f"{len(result.windows)} window(s), {hit}",
        markup=False,
        highlight=False,
    )
    width = max(10, shutil.get_terminal_size((80, 24)).columns - 2)
    for number, query in enumerate(result.queries, start=1):
        text = query.query if len(query.query) <= 70 else query.query[:67] + "..."  # the JSON keeps it whole
        console.print(f"{number}. {text}", markup=False, highlight=False)
        console.print(_table(query))
        console.print(f"saliency {sparkline(query.saliency, width - 9)}", markup=False, highlight=False)


@error_boundary
def ground(
    video: Annotated[Path, typer.Argument(help="A video file.")],
    query: Annotated[str, typer.Argument(help="What to find, in words.")],
    more: Annotated[list[str] | None, typer.Option("--query", help="Another query (repeatable).")] = None,
    backbone: Annotated[
        str | None,
        typer.Option(help="A preset or a checkpoint (default: the --adapter's, else moment-detr-clip)."),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="An adapter bundle: a folder, or a Hub id ORG/NAME[@REV].")
    ] = None,
    clip_model: Annotated[str, typer.Option(help="An open_clip model name.")] = "ViT-B-32",
    clip_weights: Annotated[str, typer.Option(help="'openai' (needs the network) or a file.")] = "openai",
    top_k: Annotated[int, typer.Option(help="Moments shown per query.")] = 5,
    stride: Annotated[int | None, typer.Option(help="Clips between windows (default: half).")] = None,
    nms_iou: Annotated[float, typer.Option(help="IoU above which a weaker moment is dropped.")] = 0.5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, one object per query.")] = False,
    png: Annotated[Path | None, typer.Option(help="Write the saliency curves to this PNG.")] = None,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Find the moments of a video that match each query, and its saliency curve."""
    use_threads(threads)
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.ground import GroundRequest, check_png, run, write_saliency_png

    if png is not None:  # before the run: a bad --png must not cost the whole video
        check_png(png)
    request = GroundRequest(
        video, (query, *(more or ())), backbone, adapter, clip_model, clip_weights, top_k,
        device, stride=stride, nms_iou=nms_iou,
    )  # fmt: skip
    # lazy: rich.progress loads when the command runs, not for --help (bench/cli_startup_bench.py)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar,
        plain_progress("ground", err_console) as ticker,  # plain lines off a terminal
    ):
        tasks: dict[str, Any] = {}

        def on_progress(event: Any) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=event.total)
            bar.update(tasks[event.stage], completed=event.done, total=event.total)
            if ticker is not None:
                ticker.update(event.stage, event.done, event.total)

        result = run(request, progress=on_progress)
    for line in result.warnings:
        err_console.print(f"warning: {line}", markup=False)
    if png is not None:
        write_saliency_png(result, png)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        _render(result)


def register(app: typer.Typer) -> None:
    app.command("ground")(ground)
