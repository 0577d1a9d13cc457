"""The demo's tables: per task and world, every method's test metrics (mean ± std over seeds at its
chosen learning rate) and its paired bootstrap difference to READ-PVLA with a verdict; as an
80-column text table, markdown, JSON and a plot of the intervals."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from readcli.demo.contract import DemoTask
from readcli.demo.execute import ProtocolOutcome
from readcli.demo.methods import DEMO_METHODS, REFERENCE
from readcli.demo.protocol import Job
from readcli.demo.stats import Comparison, compare_to_reference, mean_std


@dataclass(frozen=True)
class Row:
    """One method in one world."""

    method: str
    label: str
    group: str
    lr: float
    trainable: int
    total: int
    mean: dict[str, float]
    std: dict[str, float]  # NaN with one seed
    comparison: Comparison | None  # None for the reference itself (or when it was not run)

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


@dataclass(frozen=True)
class WorldTable:
    task: str
    world: str
    metrics: tuple[str, ...]  # the primary first
    seeds: int
    queries: int
    rows: tuple[Row, ...]


def _label(method: str) -> tuple[str, str]:
    row = DEMO_METHODS.get(method)
    return (row.label, row.group) if row is not None else (method, "baseline")


def world_table(
    task: DemoTask, world: str, outcome: ProtocolOutcome, seeds: Sequence[int], *, resamples: int = 10_000
) -> WorldTable:
    """Reduce one world's test runs: per method (S, Q) scores -> mean ± std and the comparison."""
    primary = task.metrics[0]
    scores: dict[str, dict[str, np.ndarray]] = {}
    first: dict[str, Any] = {}
    for method in task.methods():
        lr = outcome.chosen[(task.name, world, method)]
        runs = [outcome.test[Job(task.name, world, method, lr, seed, "test")] for seed in seeds]
        scores[method] = {m: np.stack([r.per_example[m] for r in runs]) for m in task.metrics}  # (S, Q)
        first[method] = (lr, runs[0])
    comparisons: Mapping[str, Comparison] = {}
    if REFERENCE in scores:
        primary_scores = {m: s[primary] for m, s in scores.items()}
        comparisons = compare_to_reference(primary_scores, REFERENCE, resamples=resamples, seed=0)
    rows = []
    for method, by_metric in scores.items():
        lr, run = first[method]
        stats = {m: mean_std(values.mean(axis=1)) for m, values in by_metric.items()}
        label, group = _label(method)
        rows.append(
            Row(
                method, label, group, lr, run.trainable, run.total,
                {m: s[0] for m, s in stats.items()}, {m: s[1] for m, s in stats.items()},
                comparisons.get(method),
            )
        )  # fmt: skip
    queries = int(next(iter(scores.values()))[primary].shape[1]) if scores else 0
    return WorldTable(task.name, world, tuple(task.metrics), len(seeds), queries, tuple(rows))


def cell(row: Row, metric: str) -> str:
    """ "mean ± std", or the mean alone with one seed (no spread can be measured from one)."""
    mean, std = row.mean[metric], row.std[metric]
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def difference(row: Row) -> str:
    c = row.comparison
    return "reference" if c is None else f"{c.mean_diff:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def text_table(table: WorldTable) -> str:
    """The console table: at most 80 columns."""
    primary = table.metrics[0]
    head = f"{table.task} / {table.world}: {table.seeds} seeds x {table.queries} test examples"
    lines = [head, f"{'method':<20} {'lr':>6} {primary:>13} {'- READ-PVLA [95% CI]':>23} verdict"]
    for row in table.rows:
        verdict: str = "" if row.comparison is None else row.comparison.verdict
        if row.comparison is not None and row.comparison.holm_verdict != "not separable":
            verdict += " (H)"
        line = f"{row.label[:20]:<20} {row.lr:>6.0e} {cell(row, primary):>13} {difference(row):>23} {verdict}"
        lines.append(line.rstrip())
    return "\n".join(line[:80] for line in lines)


def markdown_table(table: WorldTable) -> str:
    metric_heads = " | ".join(table.metrics)
    primary = table.metrics[0]
    lines = [
        f"| method | trainable (%) | lr | {metric_heads} "
        f"| {primary} − READ-PVLA [95 % CI] | verdict | Holm |",
        "|" + " --- |" * (6 + len(table.metrics)),
    ]
    for row in table.rows:
        label = f"**{row.label}**" if row.group == "ours" else row.label
        c = row.comparison
        verdicts = "— | —" if c is None else f"{c.verdict} | {c.holm_verdict}"
        metrics = " | ".join(cell(row, m) for m in table.metrics)
        lines.append(
            f"| {label} | {row.trainable:,} ({row.percent:.2f} %) | {row.lr:.0e} | {metrics} "
            f"| {difference(row)} | {verdicts} |"
        )
    return "\n".join(lines) + "\n"


def _unadapted_difference(table: WorldTable, source_only: Mapping[str, Any] | None) -> float | None:
    """Where the unadapted source backbone sits on the panel's axis: its score minus READ-PVLA's."""
    primary = table.metrics[0]
    reference = [row for row in table.rows if row.comparison is None and primary in row.mean]
    unadapted = ((source_only or {}).get(table.task) or {}).get(table.world) or {}
    if not reference or not isinstance(unadapted.get(primary), int | float):
        return None
    return float(unadapted[primary]) - reference[0].mean[primary]


def plot_png(tables: Sequence[WorldTable], source_only: Mapping[str, Any] | None = None) -> bytes:
    """One panel per (task, world): each method's difference to READ-PVLA with its 95 % interval, the
    unadapted source backbone as a dashed reference line, and a legend for the colours."""
    # lazy: matplotlib loads only when the demo draws its figure
    import matplotlib
    from matplotlib.lines import Line2D

    matplotlib.use("Agg")  # no display: the demo runs on servers and in CI
    # lazy: pyplot after matplotlib.use: the Agg backend must be chosen first
    from matplotlib import pyplot as plt

    tasks = list(dict.fromkeys(t.task for t in tables))
    columns = max(sum(t.task == name for t in tables) for name in tasks)
    figure, axes = plt.subplots(
        len(tasks), columns, figsize=(4.2 * columns, 3.6 * len(tasks)), dpi=110, squeeze=False
    )
    colours = {"better": "tab:green", "worse": "tab:red", "not separable": "tab:gray"}
    for r, name in enumerate(tasks):
        mine = [t for t in tables if t.task == name]
        for c in range(columns):
            ax = axes[r][c]
            if c >= len(mine):
                ax.axis("off")
                continue
            rows = [row for row in mine[c].rows if row.comparison is not None]
            for y, row in enumerate(rows):
                cmp = row.comparison
                assert cmp is not None
                err = [[cmp.mean_diff - cmp.low], [cmp.high - cmp.mean_diff]]
                ax.errorbar([cmp.mean_diff], [y], xerr=err, fmt="o", color=colours[cmp.verdict], capsize=3)
            ax.axvline(0.0, color="black", linewidth=0.8)
            unadapted = _unadapted_difference(mine[c], source_only)
            if unadapted is not None:
                ax.axvline(unadapted, color="tab:blue", linestyle="--", linewidth=1.0)
            # whole labels, wrapped: cut ones ("READ (= READ-PVLA w/o PV") read as other methods
            labels = ["\n".join(textwrap.wrap(row.label, 22)) for row in rows]
            ax.set_yticks(range(len(rows)), labels, fontsize=6.5)
            ax.set_title(f"{name} / {mine[c].world}", fontsize=9)
            ax.set_xlabel(f"{mine[c].metrics[0]} − READ-PVLA (95 % CI)", fontsize=8)
            ax.grid(True, axis="x", alpha=0.3)
    figure.suptitle(
        "each method minus READ-PVLA (right of 0: better), 95 % paired bootstrap interval", fontsize=9
    )
    legend = [
        Line2D([], [], color=colours["better"], marker="o", label="separably better"),
        Line2D([], [], color=colours["worse"], marker="o", label="separably worse"),
        Line2D([], [], color=colours["not separable"], marker="o", label="not separable"),
        Line2D([], [], color="black", linewidth=0.8, label="READ-PVLA (0)"),
        Line2D([], [], color="tab:blue", linestyle="--", label="source backbone, no adaptation"),
    ]
    figure.legend(handles=legend, loc="lower center", ncol=5, fontsize=7, frameon=False)
    buffer = io.BytesIO()
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
