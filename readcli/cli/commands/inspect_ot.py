"""`readcli inspect-ot`: the partial transport plan between a video and a query (pipelines/inspect_ot.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from readcli.cli.common import cli_option, console, err_console, error_boundary, threads_option, use_threads
from readcli.options.alignment import MASS, TAU

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from readcli.pipelines.inspect_ot import InspectOTResult

SHADES = " ░▒▓█"  # light to heavy
MAX_COLUMNS = 100  # clips per heatmap line; longer videos are max-pooled down to this


def register(app: typer.Typer) -> None:
    app.command("inspect-ot")(inspect_ot)


@error_boundary
def inspect_ot(
    video_features: Annotated[
        Path | None,
        typer.Option(
            "--video-features", help="Video .npz (key 'features', clips x d).  [required: this or --video]"
        ),
    ] = None,
    text_features: Annotated[
        Path | None,
        typer.Option(
            "--text-features",
            help="Text .npz (key 'last_hidden_state', tokens x d).  [required: this or --query]",
        ),
    ] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="A video file instead of --video-features (CLIP rows).")
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="A query instead of --text-features (CLIP token states).")
    ] = None,
    clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip model for --video/--query.")] = (
        "ViT-B-32"
    ),
    clip_weights: Annotated[
        str, typer.Option("--clip-weights", help="openai (needs the network) or a local weights file.")
    ] = "openai",
    device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda for --video/--query.")] = "auto",
    mass: Annotated[float, cli_option(MASS)] = MASS.default,
    tau: Annotated[float, cli_option(TAU)] = TAU.default,
    top: Annotated[int, typer.Option("--top", help="How many aligned (clip, token) pairs to list.")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print distance, mass, tau, iterations, plan.")
    ] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Also write the plan as a PNG image.")] = None,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Partial optimal transport between one video's clips and one query's tokens (files or raw)."""
    use_threads(threads)
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines import inspect_ot as pipeline

    request = pipeline.InspectOTRequest(
        video_features, text_features, video, query, clip_model, clip_weights,
        device=device, mass=mass, tau=tau, top_k=top,
    )  # fmt: skip
    if png is not None:  # before any features are read or extracted
        pipeline.check_png(png)
    result = pipeline.run(request)
    if result.provenance.warning:
        err_console.print(f"warning: {result.provenance.warning}", markup=False)
    if png is not None:
        pipeline.write_plan_png(result, png)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    state = "converged" if result.converged else "not converged"
    console.print(
        f"distance [bold]{result.distance:.6f}[/]  mass {result.mass}  tau {result.tau}  "
        f"iterations {result.iterations} ({state}{', log domain' if result.log_domain else ''})"
    )
    console.print(_heatmap(result))
    console.print(_pairs_table(result))
    if png is not None:
        console.print(f"plan image written to {png}")


def _heatmap(result: InspectOTResult) -> Text:
    """Tokens down, clips across; shade and colour grow with the transported mass."""
    # lazy: numpy and rich.text load when the plan is shown, not for --help (bench/cli_startup_bench.py)
    import numpy as np
    from rich.text import Text

    plan = result.plan.T  # (N_L, N_V)
    pool = -(-plan.shape[1] // MAX_COLUMNS)  # clips per character
    width = -(-plan.shape[1] // pool)
    padded = np.zeros((plan.shape[0], width * pool), dtype=plan.dtype)
    padded[:, : plan.shape[1]] = plan
    pooled = padded.reshape(plan.shape[0], width, pool).max(axis=2)  # (N_L, width)
    level = pooled / max(float(pooled.max()), 1e-30)
    text = Text(
        f"plan: {plan.shape[0]} tokens (rows) x {plan.shape[1]} clips (columns"
        + (f", {pool} per character)\n" if pool > 1 else ")\n")
    )
    names = [_row_name(result, token) for token in range(plan.shape[0])]
    width_names = max(map(len, names), default=0)
    for token, row in enumerate(level):
        text.append(f"{names[token]:<{width_names}} ", style="dim")
        for value in row:
            shade = SHADES[int(round(value * (len(SHADES) - 1)))]
            text.append(
                shade, style=f"rgb({int(60 + 195 * value)},{int(40 + 120 * value)},{int(90 * (1 - value))})"
            )
        text.append("\n")
    return text


def _pairs_table(result: InspectOTResult) -> Table:
    # lazy: rich.table loads when a table is shown, not for --help (bench/cli_startup_bench.py)
    from rich.table import Table

    table = Table(title="top aligned pairs")
    for column in ("clip", "token", "mass", "cost (1 - cos)"):
        table.add_column(column, justify="right")
    for pair in result.top_pairs:
        table.add_row(str(pair.clip), result.token_name(pair.token), f"{pair.weight:.5f}", f"{pair.cost:.4f}")
    return table


def _row_name(result: InspectOTResult, token: int, limit: int = 14) -> str:
    """`  5 camera`: the token's index and, when the query is known, its word (cut to `limit`)."""
    word = result.tokens[token] if token < len(result.tokens) else ""
    word = word if len(word) <= limit else word[: limit - 1] + "…"
    return f"{token:>3} {word}".rstrip()
