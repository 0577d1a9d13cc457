"""`readcli summarize`: a video's summary from its transcript and video features (pipelines/summarize.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from readcli.cli.common import err_console, error_boundary, threads_option, use_threads
from readcli.errors import InvalidValueError


def register(app: typer.Typer) -> None:
    app.command("summarize")(summarize)


@error_boundary
def summarize(
    video: Annotated[
        Path | None,
        typer.Argument(help="Video file (CLIP features are extracted; omit with --video-features)."),
    ] = None,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Transcript, UTF-8 text.  [required]")
    ] = None,
    video_features: Annotated[
        Path | None,
        typer.Option("--video-features", help="Video features instead of VIDEO: (rows, dim) .npy."),
    ] = None,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="bart-base-vg|t5-base-vg|DIR (default: the bundle's).")
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option(
            "--adapter", help="Bundle from finetune --task vls: a folder or a Hub id ORG/NAME[@REV]."
        ),
    ] = None,
    beams: Annotated[
        int | None, typer.Option("--beams", help="Beam width (default: the bundle's, else 5 as official).")
    ] = None,
    no_repeat_ngram_size: Annotated[
        int | None,
        typer.Option("--no-repeat-ngram-size", help="Block repeated n-grams (default 3; 0 = off)."),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option("--max-length", help="Most summary tokens, the start token counted (default 64)."),
    ] = None,
    official_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--official-checkpoint",
            help="Official VG-GPLMs checkpoint (Lightning .ckpt or state dict) on --backbone's text model.",
        ),
    ] = None,
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint", help="Allow a checkpoint that needs arbitrary unpickling (runs code)."
        ),
    ] = False,
    fusion_heads: Annotated[
        int | None, typer.Option("--fusion-heads", help="Fusion heads (official n_attn_heads; type 5).")
    ] = None,
    fusion_layer: Annotated[
        int | None,
        typer.Option("--fusion-layer", help="BART encoder layer fused (official fusion_layer; -1 last)."),
    ] = None,
    clip_weights: Annotated[
        str, typer.Option("--clip-weights", help="CLIP weights for VIDEO: 'openai' or a file.")
    ] = "openai",
    device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N].")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Summarize a video from its transcript with a vision-guided BART/T5 (and an adapter bundle)."""
    use_threads(threads)
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines import summarize as pipeline

    if transcript is None:
        raise InvalidValueError("missing --transcript FILE (the video's transcript, UTF-8 text)")
    request = pipeline.SummarizeRequest(
        transcript=str(transcript), video=None if video is None else str(video),
        video_features=None if video_features is None else str(video_features), backbone=backbone,
        adapter=None if adapter is None else str(adapter),
        beams=beams, no_repeat_ngram_size=no_repeat_ngram_size, max_length=max_length,
        official_checkpoint=None if official_checkpoint is None else str(official_checkpoint),
        trust_checkpoint=trust_checkpoint, fusion_heads=fusion_heads, fusion_layer=fusion_layer,
        clip_weights=clip_weights, device=device,
    )  # fmt: skip
    result = pipeline.run(request)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    typer.echo(result.summary)
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    note = "; transcript truncated" if result.truncated_transcript else ""
    err_console.print(
        f"[dim]{result.backbone}{' + ' + result.adapter if result.adapter else ''}, "
        f"{result.video_rows} video rows, {result.seconds:.1f} s{note}[/dim]",
        highlight=False,
    )
