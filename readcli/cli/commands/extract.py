"""`readcli extract`: CLIP video (and query) features into a folder, with progress and a summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from readcli.cli.common import (
    cli_option,
    console,
    err_console,
    error_boundary,
    report_error,
    threads_option,
    use_threads,
)
from readcli.cli.progress import Ticker, plain_progress
from readcli.options.features import FRAMES_BATCH

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table


class _Renderer:
    """Turns pipeline progress events into rich bars (overall and per video) and failure lines; off a
    terminal, into plain lines (`ticker`): one per video, with the run's ETA."""

    def __init__(self, progress: Progress, ticker: Ticker | None = None) -> None:
        self.progress = progress
        self.ticker = ticker
        self.overall = progress.add_task("overall", total=None)
        self.current: Any = None
        self.current_name = ""
        self.finished, self.planned = 0, 0

    def __call__(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "Planned":
            self.planned = event.todo + event.skipped + event.failed_early
            self.progress.update(self.overall, total=self.planned)
        elif kind == "ItemProgress":
            if event.name != self.current_name:
                if self.current is not None:
                    self.progress.remove_task(self.current)
                self.current = self.progress.add_task(event.name, total=event.total)
                self.current_name = event.name
            self.progress.update(self.current, completed=event.done, total=event.total)
            if self.ticker is not None:
                self.ticker.update(event.name, event.done, event.total, of=self._of())
        elif kind == "ItemFinished":
            self.progress.advance(self.overall)
            self.finished += 1
            if event.outcome.status == "failed":
                report_error(event.outcome.reason or "failed")

    def _of(self) -> tuple[int, int] | None:
        # clamped: the queries' batch item reports progress after the last planned item finished
        return (min(self.finished, self.planned - 1), self.planned) if self.planned else None


def _summary(result: Any) -> Table:
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
    from rich.table import Table

    table = Table(title=f"extract -> {result.out_dir}", show_edge=False)
    for column in ("status", "videos", "queries"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for status in ("done", "skipped", "failed"):
        videos = sum(o.status == status and o.kind == "video" for o in result.outcomes)
        queries = sum(o.status == status and o.kind == "query" for o in result.outcomes)
        table.add_row(status, str(videos), str(queries))
    return table


def _as_json(result: Any) -> str:
    return json.dumps(
        {
            "out_dir": str(result.out_dir),
            "encoder": asdict(result.encoder),
            "shard": str(result.shard) if result.shard else None,
            "seconds": round(result.seconds, 3),
            "outcomes": [asdict(o) for o in result.outcomes],
        },
        indent=2,
    )


@error_boundary
def extract(
    out: Annotated[Path, typer.Option("--out", help="Folder for {name}.npz / qid{qid}.npz and their .json.")],
    paths: Annotated[
        list[str] | None, typer.Argument(help="Video files, directories (searched recursively) or globs.")
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="A jsonl of {qid, query} rows to encode.")] = None,
    clip_model: Annotated[str, typer.Option(help="An open_clip model name.")] = "ViT-B-32",
    clip_weights: Annotated[
        str, typer.Option(help="'openai' (needs the network) or a weights file.")
    ] = "openai",
    clip_len: Annotated[float, typer.Option(help="Seconds per clip; one feature row per clip.")] = 2.0,
    shard: Annotated[str | None, typer.Option(help="I/N: this machine's share, I in 0..N-1.")] = None,
    batch_size: Annotated[int, cli_option(FRAMES_BATCH)] = FRAMES_BATCH.default,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON, not a table.")] = False,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Extract CLIP features per clip of each video (and per query token), resumable and shardable."""
    use_threads(threads)
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.extract import ExtractRequest, run

    request = ExtractRequest(
        tuple(paths or ()), out, clip_model, clip_weights, clip_len, batch_size, device, shard, queries
    )
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Bars only on a terminal: rich drops a transient display's output when stderr is a file or pipe;
    # there, plain lines instead (readcli/cli/progress.py).
    live = err_console.is_terminal
    with (
        Progress(*columns, console=err_console, transient=True, disable=not live) as progress,
        plain_progress("extract", err_console) as ticker,
    ):
        result = run(request, progress=_Renderer(progress, ticker))
    if as_json:
        typer.echo(_as_json(result))
    else:
        console.print(_summary(result))
    if not result.ok:
        raise typer.Exit(1)


def _merge_summary(result: Any, into: Path | None) -> str:
    verdict = "complete" if result.ok else "INCOMPLETE"
    copied = f"; copied {result.copied} into {into}" if into is not None and result.ok else ""
    return (
        f"{verdict}: {result.done}/{result.expected} items done exactly once by {result.manifests} "
        f"shard runs (N={result.shards}); {len(result.missing)} missing, "
        f"{len(result.duplicated)} duplicated{copied}"
    )


@error_boundary
def extract_merge(
    folders: Annotated[list[Path], typer.Argument(help="The shards' --out folders (or one shared folder).")],
    videos: Annotated[
        list[str] | None,
        typer.Option("--videos", help="The source list again (default: the list the shards recorded)."),
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="The queries jsonl again (default: recorded).")] = None,
    into: Annotated[
        Path | None, typer.Option("--into", help="Copy a complete set of features into this folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check that sharded extract runs did every video exactly once; one line per missing or duplicate."""
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.extract_merge import MergeRequest, run

    result = run(MergeRequest(tuple(folders), tuple(videos or ()), queries, into))
    for line in (*result.problems, *result.missing, *result.duplicated):
        report_error(line)
    if as_json:
        typer.echo(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
    else:
        console.print(_merge_summary(result, into))
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("extract-merge")(extract_merge)
