"""`readcli models`: every preset, the weights it needs, present or missing (pipelines/models.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from readcli.cli.common import console, error_boundary

if TYPE_CHECKING:
    from readcli.pipelines.models import FileStatus, PresetRow


@error_boundary
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every field of every file).")] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not check the digests of present files (faster).")
    ] = False,
) -> None:
    """List the presets and the weights each needs: present or missing, source, size, licence, digest."""
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
    from rich import box
    from rich.table import Table

    # lazy: the pipeline loads only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines.models import list_models

    result = list_models(check_digests=not no_verify)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    table = Table(
        title="Presets and the weights they need", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    widths = {"preset": 16, "file": 18, "needed as": 10, "state": 7, "size": 6, "digest": 11}
    for column, width in widths.items():  # fits 80 columns; longer values fold
        table.add_column(column, overflow="fold", min_width=width)
    for row in result.presets:
        for number, status in enumerate(row.files):
            entry = status.entry
            table.add_row(
                ", ".join((row.preset, *row.aliases)) if number == 0 else "",
                entry.file_name if entry.kind != "hub" else entry.source,
                entry.role,
                status.state,
                _size(status.size),
                _digest(status),
            )
    console.print(table)
    console.print("Where from, licence, digest, where it goes:", markup=False)
    seen: set[tuple[str, str]] = set()
    for row in result.presets:
        for status in row.files:
            if status.entry.key not in seen:
                seen.add(status.entry.key)
                console.print(_source_line(status), markup=False, soft_wrap=True)
    missing = [row.preset for row in result.presets if not row.ready and _downloadable(row)]
    fresh = [f"{name} (from {row.preset})" for row in result.presets for name in row.fresh]
    if fresh:
        console.print(f"Freshly initialised, no weights needed: {', '.join(fresh)}.", markup=False)
    if missing:
        console.print(
            f"Get what is missing: readcli download {' '.join(missing)}", markup=False, soft_wrap=True
        )


def _downloadable(row: PresetRow) -> bool:
    return all(status.entry.kind != "choose" for status in row.files)


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e6:,.1f} MB" if size < 10**8 else f"{size / 1e6:,.0f} MB"


def _digest(status: FileStatus) -> str:
    entry = status.entry
    recorded = ["sha256" if entry.sha256 else "", "git blob" if entry.git_blob_sha1 else ""]
    text = " + ".join(part for part in recorded if part) or "none known"
    if status.state == "present":
        text += " (ok)" if status.checked else ""
    elif status.state == "damaged":
        text += " (DIFFERS)"
    return text


def _source_line(status: FileStatus) -> str:
    entry = status.entry
    if entry.kind == "hub":
        rev = f"@{entry.revision}" if entry.revision else ""
        where = f"the Hugging Face Hub, {entry.source}{rev}"
    elif entry.kind == "choose":
        where = f"{entry.source} (one file per domain, listed in the card)"
    else:
        where = entry.fetch_url()
    place = "at" if status.state != "missing" else "to"
    into = "the Hugging Face cache" if status.path is None else str(status.path)
    problem = f"; {status.problem}" if status.problem else ""
    digests = [
        f"sha256 {entry.sha256}" if entry.sha256 else "",
        f"git blob {entry.git_blob_sha1}" if entry.git_blob_sha1 else "",
    ]
    digest = "; ".join(d for d in digests if d) or "no published digest"
    head = f"- {entry.file_name} ({entry.preset}): {where}"
    return f"{head}; licence {entry.license}; {digest}; {place} {into}{problem}"


def register(app: typer.Typer) -> None:
    app.command("models")(models)
