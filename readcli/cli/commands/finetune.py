"""`readcli finetune`: train adapters on a dataset, keep the best bundle (pipelines/finetune.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from readcli.cli.common import cli_option, console, error_boundary, threads_option, use_threads
from readcli.cli.progress import plain_progress
from readcli.errors import InvalidValueError
from readcli.options.alignment import MASS, MASS_MODE, PVLA, PVLA_WEIGHT, TAU
from readcli.options.finetune import (
    BACKBONE,
    BEAMS,
    BOTTLENECK,
    DATASET,
    DOMAIN,
    FUSION_OPTION,
    MAX_SUMMARY_LENGTH,
    METHOD,
    NO_REPEAT_NGRAM_SIZE,
    RNN,
    SELECT_METRIC,
    TASK,
    VIDEO_DIM,
)
from readcli.options.training import (
    AMP,
    BATCH_SIZE,
    DEVICE,
    EPOCHS,
    LR,
    SEED,
    SKIP_MISSING,
    TRAIN_SAMPLES,
)

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
    task: Annotated[str, cli_option(TASK)] = TASK.default,
    backbone: Annotated[str | None, cli_option(BACKBONE)] = BACKBONE.default,
    method: Annotated[str, cli_option(METHOD)] = METHOD.default,
    bottleneck: Annotated[int | None, cli_option(BOTTLENECK, "-k")] = BOTTLENECK.default,
    rnn: Annotated[str | None, cli_option(RNN)] = None,  # None: not given (the method's default)
    pvla: Annotated[bool, cli_option(PVLA)] = PVLA.default,
    pvla_weight: Annotated[float, cli_option(PVLA_WEIGHT)] = PVLA_WEIGHT.default,
    mass: Annotated[float, cli_option(MASS)] = MASS.default,
    mass_mode: Annotated[str, cli_option(MASS_MODE)] = MASS_MODE.default,
    tau: Annotated[float, cli_option(TAU)] = TAU.default,
    epochs: Annotated[int, cli_option(EPOCHS)] = EPOCHS.default,
    lr: Annotated[float, cli_option(LR)] = LR.default,
    batch_size: Annotated[int, cli_option(BATCH_SIZE)] = BATCH_SIZE.default,
    seed: Annotated[int, cli_option(SEED)] = SEED.default,
    train_samples: Annotated[int | None, cli_option(TRAIN_SAMPLES)] = TRAIN_SAMPLES.default,
    skip_missing: Annotated[bool, cli_option(SKIP_MISSING)] = SKIP_MISSING.default,
    device: Annotated[str, cli_option(DEVICE)] = DEVICE.default,
    amp: Annotated[str, cli_option(AMP)] = AMP.default,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this directory.")
    ] = None,
    select_metric: Annotated[str | None, cli_option(SELECT_METRIC)] = SELECT_METRIC.default,
    video_dim: Annotated[int | None, cli_option(VIDEO_DIM)] = VIDEO_DIM.default,
    fusion_option: Annotated[list[str] | None, cli_option(FUSION_OPTION)] = FUSION_OPTION.default,
    beams: Annotated[int, cli_option(BEAMS)] = BEAMS.default,
    no_repeat_ngram_size: Annotated[int, cli_option(NO_REPEAT_NGRAM_SIZE)] = NO_REPEAT_NGRAM_SIZE.default,
    max_summary_length: Annotated[int, cli_option(MAX_SUMMARY_LENGTH)] = MAX_SUMMARY_LENGTH.default,
    dataset: Annotated[str | None, cli_option(DATASET)] = DATASET.default,
    domain: Annotated[str | None, cli_option(DOMAIN)] = DOMAIN.default,
    threads: Annotated[int | None, threads_option()] = None,
) -> None:
    """Fine-tune a frozen backbone with READ (or a baseline method) and PVLA (grounding or summarization)."""
    use_threads(threads)
    # lazy: torch and the pipelines load only when the command runs (`readcli --help` stays fast)
    from readcli.pipelines import finetune as pipeline
    from readcli.pipelines import finetune_domains, finetune_request

    given = _given_options(ctx)
    if resume is not None:  # every option given is checked against the run's recorded one
        if finetune_domains.is_domains_dir(resume):
            request = finetune_domains.resume_domains_request(resume, changes=given)
        else:
            request = pipeline.resume_request(resume, changes=given)
    else:
        if data is None or out is None:
            missing = " and ".join(
                name for name, value in (("--data", data), ("--out", out)) if value is None
            )
            raise InvalidValueError(f"missing {missing} (or use --resume RUN_DIR)")
        for name in ("data", "out", "task"):
            given.pop(name, None)
        request = finetune_request.new_request(task, data, out, given)
    if finetune_domains.is_all_domains(request):
        with _Progress() as progress:
            table = finetune_domains.run_domains(
                request, resume=resume is not None, progress=progress, on_domain=_announce_domain
            )
        if table.rank == 0:  # under torchrun every rank gets here; one table is enough
            _render_domains(table)
        return
    with _Progress() as progress:
        result = pipeline.run(request, resume=resume is not None, progress=progress)
    if result.rank == 0:
        _render(result)


def _given_options(ctx: typer.Context) -> dict[str, Any]:
    """The options typed (or set in the environment), by request field: on --resume the pipeline
    refuses any that differs from the run's recorded value (docs/training.md), so none is silently
    ignored; on a fresh run every other option takes its default, and the other task's are refused."""
    given: dict[str, Any] = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        if name in _NOT_REQUEST_FIELDS or source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        if name == "fusion_option":  # --fusion-option KEY=VALUE ...: the request's fusion_options
            given["fusion_options"] = list(value or ())
        else:
            given[name] = str(value) if isinstance(value, Path) else value
    return given


_NOT_REQUEST_FIELDS = ("resume", "threads")


class _Progress:
    """Renders the loop's progress events: a bar per epoch with loss parts, it/s and ETA."""

    def __enter__(self) -> _Progress:
        # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
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
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
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
    # lazy: rich loads only when the command shows its output, not for --help (bench/cli_startup_bench.py)
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
