"""The demo's table: mean ± std over seeds per method, as markdown, JSON and a PNG plot."""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from readcli.demo.methods import DEMO_METHODS
from readcli.demo.runner import REPORTED, RunOutcome
from readcli.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

SHORT = {"MR-full-mAP": "mAP", "MR-full-R1@0.5": "R1@0.5", "MR-full-R1@0.7": "R1@0.7"}


@dataclass(frozen=True)
class TableRow:
    """One method over every seed: parameter counts and each metric's mean and standard deviation."""

    key: str
    label: str
    group: str
    trainable: int
    total: int
    mean: dict[str, float]
    std: dict[str, float]  # sample std over seeds; 0 with one seed
    seeds: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def summarise(outcomes: Sequence[RunOutcome]) -> list[TableRow]:
    """Group runs by method (in the registry's order) and reduce over seeds."""
    rows = []
    for key, method in DEMO_METHODS.items():
        runs = [o for o in outcomes if o.key == key]
        if not runs:
            continue
        mean = {m: statistics.fmean(r.metrics[m] for r in runs) for m in REPORTED}
        std = {m: statistics.stdev(r.metrics[m] for r in runs) if len(runs) > 1 else 0.0 for m in REPORTED}
        rows.append(
            TableRow(key, method.label, method.group, runs[0].trainable, runs[0].total, mean, std, len(runs))
        )
    return rows


def cell(row: TableRow, metric: str) -> str:
    return f"{row.mean[metric]:.2f} ± {row.std[metric]:.2f}"


def params_text(row: TableRow) -> str:
    return f"{row.trainable:,} ({row.percent:.2f} %)"


def markdown_table(rows: Sequence[TableRow], reference: dict[str, float] | None = None) -> str:
    """A paper-style markdown table; `reference` adds the unadapted source backbone as a first row."""
    header = "| method | trainable params (%) | " + " | ".join(SHORT[m] for m in REPORTED) + " |"
    lines = [header, "|" + " --- |" * (2 + len(REPORTED))]
    if reference is not None:
        values = " | ".join(f"{reference[m]:.2f}" for m in REPORTED)
        lines.append(f"| source backbone, no adaptation | 0 (0.00 %) | {values} |")
    for row in rows:
        label = f"**{row.label}**" if row.group == "ours" else row.label
        lines.append(f"| {label} | {params_text(row)} | " + " | ".join(cell(row, m) for m in REPORTED) + " |")
    return "\n".join(lines) + "\n"


def results_json(
    rows: Sequence[TableRow], outcomes: Sequence[RunOutcome], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        **extra,
        "rows": [{**asdict(row), "percent": row.percent} for row in rows],
        "runs": [asdict(o) for o in outcomes],
    }


def plot_png(rows: Sequence[TableRow]) -> bytes:
    """mAP (mean, std as error bars) against trainable parameters on a log axis, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the demo runs on servers and in CI
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = {"baseline": "tab:blue", "ours": "tab:red", "ablation": "tab:orange"}
    for row in rows:
        x = max(row.trainable, 1)
        y, err = row.mean["MR-full-mAP"], row.std["MR-full-mAP"]
        axes.errorbar([x], [y], yerr=[err], fmt="o", color=colours[row.group], capsize=3)
        axes.annotate(row.key, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel("target mAP (MR-full-mAP)")
    axes.set_title("readcli demo: low-resource adaptation to the shifted domain")
    axes.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def write_outputs(
    out: Path,
    rows: Sequence[TableRow],
    outcomes: Sequence[RunOutcome],
    *,
    reference: dict[str, float] | None,
    extra: dict[str, Any],
) -> tuple[Path, Path, Path]:
    """DIR/results.md, DIR/results.json, DIR/map_vs_params.png, each written atomically."""
    paths = (out / "results.md", out / "results.json", out / "map_vs_params.png")
    atomic_write_text(paths[0], markdown_table(rows, reference))
    payload = results_json(rows, outcomes, {**extra, "source_only": reference})
    atomic_write_json(paths[1], _finite(payload))
    atomic_write_bytes(paths[2], plot_png(rows))
    return paths


def _finite(obj: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
