"""`readcli download PRESET...`: fetch a preset's weights, verified, into the caches (pipelines/download)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from readcli.cli.common import err_console, error_boundary

if TYPE_CHECKING:
    from readcli.pipelines.download import WeightFile

_EVERY_S = 10.0  # a progress line at most this often (plain lines: they read well in a log file too)


@error_boundary
def download(
    presets: Annotated[
        list[str],
        typer.Argument(
            metavar="PRESET...", help="Preset names, e.g. moment-detr-clip (see `readcli models`)."
        ),
    ],
) -> None:
    """Fetch the weights the presets need (verified against their cards); present files are kept."""
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.download import DownloadRequest, run

    result = run(DownloadRequest(tuple(presets)), progress=_Progress())
    for outcome in result.files:
        checked = f"{outcome.checked} ok" if outcome.checked else "no published digest to check"
        typer.echo(
            f"{outcome.action}: {outcome.entry.file_name} ({outcome.entry.preset}) {outcome.path} [{checked}]"
        )


class _Progress:
    """One line when a file starts, then at most one every _EVERY_S seconds, on stderr."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, entry: WeightFile, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage == "start":
            self.last = now
            where = entry.source if entry.kind == "hub" else entry.fetch_url()
            err_console.print(f"fetching {entry.file_name} ({entry.preset}) from {where}", markup=False)
        elif stage == "bytes" and now - self.last >= _EVERY_S:
            self.last = now
            of = f" of {total / 1e6:,.1f}" if total else ""
            err_console.print(f"  {entry.file_name}: {done / 1e6:,.1f}{of} MB", markup=False)


def register(app: typer.Typer) -> None:
    app.command("download")(download)
