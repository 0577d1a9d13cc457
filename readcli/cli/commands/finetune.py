"""`readcli finetune`: train adapters on a dataset, keep the best bundle (pipelines/finetune.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from readcli.cli.common import console, error_boundary, threads_option, use_threads
from readcli.cli.progress import plain_progress

SHOWN_METRICS = (
    "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "HL-min-VeryGood-mAP", "rouge1", "rouge2", "rougeL",
    "mAP-avg", "top5-mAP-avg",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)


@error_boundary
def finetune(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset directory (see docs/data.md).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory for checkpoints, bundle, logs.")
    ] = None,
    task: Annotated[
        str, typer.Option("--task", help="tlg (temporal language grounding) or vls (summarization, How2).")
    ] = "tlg",
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            help="Preset, checkpoint or directory (default: moment-detr-clip for tlg, bart-base-vg for vls).",
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="full|partial|bias|proj|lora|prompt|adapter|read")
    ] = "read",
    bottleneck: Annotated[
        int | None, typer.Option("--bottleneck", "-k", help="Adapter width k (default: d/4).")
    ] = None,
    rnn: Annotated[str, typer.Option("--rnn", help="READ recurrence: rnn|gru|lstm.")] = "rnn",
    pvla: Annotated[bool, typer.Option("--pvla/--no-pvla", help="Add the PVLA alignment loss.")] = True,
    pvla_weight: Annotated[
        float, typer.Option("--pvla-weight", help="Weight of PVLA against the task loss.")
    ] = 1.0,
    mass: Annotated[float, typer.Option("--mass", help="Transported mass fraction s in (0, 1].")] = 0.5,
    mass_mode: Annotated[
        str, typer.Option("--mass-mode", help="fixed|sweep (the paper's min over s).")
    ] = "fixed",
    tau: Annotated[float, typer.Option("--tau", help="Entropic temperature of the OT.")] = 0.05,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default 10).")] = None,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 32,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for subset, initialisation and data order.")
    ] = 2018,
    train_samples: Annotated[
        int | None, typer.Option("--train-samples", help="Low-resource subset size.")
    ] = None,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Skip rows whose features are missing.")
    ] = False,
    device: Annotated[str | None, typer.Option("--device", help="auto|cpu|cuda[:N] (default auto).")] = None,
    amp: Annotated[str, typer.Option("--amp", help="auto|off|bf16|fp16 (auto: bf16 on CUDA only).")] = "auto",
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this directory.")
    ] = None,
    select_metric: Annotated[
        str | None,
        typer.Option(
            "--select-metric", help="Metric that picks the best epoch (tlg: MR-full-mAP, vls: rougeL)."
        ),
    ] = None,
    video_dim: Annotated[
        int | None,
        typer.Option("--video-dim", help="vls: video feature width (new fusion head; default 2048)."),
    ] = None,
    fusion_option: Annotated[
        list[str] | None,
        typer.Option(
            "--fusion-option",
            help="vls: KEY=VALUE fusion option (e.g. cross_attn_type=5, use_img_trans=false); repeatable.",
        ),
    ] = None,
    beams: Annotated[int, typer.Option("--beams", help="vls: beam search width (official 5).")] = 5,
    no_repeat_ngram_size: Annotated[
        int, typer.Option("--no-repeat-ngram-size", help="vls: block repeated n-grams (0 = off).")
    ] = 3,
    max_summary_length: Annotated[
        int,
        typer.Option(
            "--max-summary-length",
            help="vls: most tokens per summary, the start token counted (official 64).",
        ),
    ] = 64,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="tlg: youtube|tvsum highlight detection (default: the data's format)."
        ),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain", help="youtube/tvsum: one domain, or 'all' (one run per domain, OUT/<domain>/)."
        ),
    ] = None,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Fine-tune a frozen backbone with READ (or a baseline method) and PVLA (grounding or summarization)."""
    use_threads(threads)
    from readcli.backbones.vision_guided_config import parse_fusion_options
    from readcli.pipelines import finetune as pipeline
    from readcli.pipelines import highlights
    from readcli.training.distributed import env_dist
    from readcli.training.loop import TrainSettings

    if resume is not None:
        changes = _given_on_resume(ctx, resume)
        if highlights.is_domains_dir(resume):
            request = highlights.resume_domains_request(resume, epochs=epochs, device=device, changes=changes)
        else:
            request = pipeline.resume_request(resume, epochs=epochs, device=device, changes=changes)
    else:
        _require(data=data, out=out)
        settings = TrainSettings(
            epochs=10 if epochs is None else epochs,  # 0 reaches TrainSettings' range check
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=device or "auto",
            amp=amp,  # type: ignore[arg-type]
            select_metric=select_metric or pipeline.SELECT_METRICS.get(task, "MR-full-mAP"),
        )
        request = pipeline.FinetuneRequest(
            data=str(data), out=str(out), task=task,
            backbone=backbone or pipeline.DEFAULT_BACKBONES.get(task, "moment-detr-clip"), method=method,
            bottleneck=bottleneck, rnn=rnn, pvla=pvla, pvla_weight=pvla_weight, mass=mass,
            mass_mode=mass_mode, tau=tau, train_samples=train_samples, skip_missing=skip_missing,
            train=settings, video_dim=video_dim, beams=beams, no_repeat_ngram_size=no_repeat_ngram_size,
            max_summary_length=max_summary_length, dataset=dataset, domain=domain,
            fusion_options=parse_fusion_options(fusion_option or []) or None,
        )  # fmt: skip
    if (request.domain or "").lower() == "all":
        with _Progress() as progress:
            table = highlights.run_domains(
                request,
                resume=resume is not None,
                progress=progress,
                on_domain=_announce_domain if env_dist().is_main else None,
            )
        if env_dist().is_main:  # under torchrun every rank gets here; one table is enough
            _render_domains(table)
        return
    with _Progress() as progress:
        result = pipeline.run(request, resume=resume is not None, progress=progress)
    if result.rank == 0:
        _render(result)


# options that name a field of the recorded request (run.json); --epochs and --device are applied apart
_RESUME_FIELDS = (
    "data", "task", "backbone", "method", "bottleneck", "rnn", "pvla", "pvla_weight", "mass", "mass_mode",
    "tau", "lr", "batch_size", "seed", "train_samples", "skip_missing", "amp", "select_metric",
    "video_dim", "beams", "no_repeat_ngram_size", "max_summary_length", "dataset", "domain",
)  # fmt: skip


def _given_on_resume(ctx: typer.Context, resume: Path) -> dict[str, Any]:
    """The options typed with --resume, by request field: the pipeline refuses any that differs from
    the run's recorded value (docs/training.md), so none is silently ignored."""
    import os

    from readcli.errors import InvalidValueError

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    out = ctx.params.get("out")
    if given("out") and out is not None and os.path.abspath(out) != os.path.abspath(resume):
        raise InvalidValueError(
            f"--out {out} differs from --resume {resume}: a resumed run continues in its own folder; "
            "drop --out"
        )
    changes = {name: ctx.params[name] for name in _RESUME_FIELDS if given(name)}
    if "data" in changes:
        changes["data"] = str(changes["data"])
    if given("fusion_option"):  # --fusion-option KEY=VALUE ... is the request's fusion_options
        from readcli.backbones.vision_guided_config import parse_fusion_options

        changes["fusion_options"] = parse_fusion_options(ctx.params["fusion_option"] or []) or None
    return changes


def _require(**options: Any) -> None:
    from readcli.errors import InvalidValueError

    missing = [f"--{name}" for name, value in options.items() if value is None]
    if missing:
        raise InvalidValueError(f"missing {' and '.join(missing)} (or use --resume RUN_DIR)")


class _Progress:
    """Renders the loop's progress events: a bar per epoch with loss parts, it/s and ETA."""

    def __enter__(self) -> _Progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]} it/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[parts]}"),
            console=console,
            disable=not console.is_terminal,  # off a terminal: plain lines (below), no stray blank line
        )
        self.bar.__enter__()
        self.task_id: Any = None
        self.plain = plain_progress("finetune", console)  # plain lines off a terminal (cli/progress.py)
        self.ticker = self.plain.__enter__()
        return self

    def __call__(self, event: Any) -> None:
        if event.kind == "step":
            if self.task_id is None or event.step == 1:
                epoch = f"{event.epoch + 1}/{event.epochs}"
                self.task_id = self.bar.add_task("", total=event.steps, epoch=epoch, speed="-", parts="")
            speed = self.bar.tasks[self.task_id].speed
            parts = " ".join(
                f"{k.removeprefix('loss_')}={v:.3f}" for k, v in event.parts.items() if "_" not in k[5:]
            )
            self.bar.update(
                self.task_id, completed=event.step, parts=parts, speed=f"{speed:.1f}" if speed else "-"
            )
            if self.ticker is not None:
                of = (event.epoch, event.epochs)
                self.ticker.update(
                    f"epoch {event.epoch + 1}/{event.epochs}", event.step, event.steps, of=of, detail=parts
                )
        elif event.kind == "eval":
            shown = "  ".join(f"{k} {event.metrics[k]:.2f}" for k in SHOWN_METRICS if k in event.metrics)
            console.print(
                f"  eval epoch {event.epoch}: {shown}{'  [green]best[/green]' if event.is_best else ''}"
            )

    def __exit__(self, *exc: object) -> None:
        self.plain.__exit__(None, None, None)
        self.bar.__exit__(None, None, None)


def _render(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"best epoch {result.best_epoch}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN_METRICS:
        if key in result.best_metrics:
            table.add_row(key, f"{result.best_metrics[key]:.2f}")
    console.print(table)
    console.print(
        f"trainable {result.trainable:,} / {result.total:,} parameters ({result.percent:.2f} %)"
        + (f"; skipped {result.skipped_missing} rows with missing features" if result.skipped_missing else "")
    )
    console.print(
        f"bundle: {result.run_dir / 'best'}   predictions: {result.run_dir / 'best_val_preds.jsonl'}"
    )


def _announce_domain(domain: str, index: int, total: int) -> None:
    console.print(f"[bold]domain {domain}[/bold] ({index + 1}/{total})")


def _render_domains(result: Any) -> None:
    """The paper's per-domain table (tables 1 and 2): one column per domain and the average."""
    from rich.table import Table

    title = {"youtube": "YouTube Highlights", "tvsum": "TVSum"}.get(result.dataset, result.dataset)
    table = Table(title=f"{title}: {result.metric} per domain (best epoch of each domain's run)")
    for row in result.rows:
        table.add_column(row.domain, justify="right")
    table.add_column("avg", justify="right", style="bold")
    table.add_row(*(f"{row.value:.2f}" for row in result.rows), f"{result.average:.2f}")
    console.print(table)
    reused = [row.domain for row in result.rows if row.reused]
    if reused:
        console.print(f"reused finished runs: {', '.join(reused)}")
    console.print(f"runs: {result.out}/<domain>/   table: {result.out / 'domains.json'}")
