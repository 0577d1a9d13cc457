"""Write a demo run's outputs: DIR/results.md, DIR/results.json and DIR/differences.png (atomically)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from readcli.demo.contract import SourceReport
from readcli.demo.execute import ProtocolOutcome
from readcli.demo.protocol import dev_table
from readcli.demo.report import WorldTable, markdown_table, plot_png, text_table
from readcli.demo.tlg_profile import MASTERY
from readcli.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text


def mastery_line(task: str, report: SourceReport) -> str:
    metrics = ", ".join(f"{k} {v:.1f}" for k, v in report.metrics.items())
    line = f"{task} source backbone {report.architecture}: held-out source {metrics}"
    if task == "tlg":
        met = all(report.metrics.get(k, 0.0) >= v for k, v in MASTERY.items())
        bar = ", ".join(f"{k} >= {v:g}" for k, v in MASTERY.items())
        line += f" (mastery bar {bar}: {'met' if met else 'NOT met'})"
    return line


def markdown(
    tables: Sequence[WorldTable], outcome: ProtocolOutcome, source_only: dict[str, Any], extra: dict[str, Any]
) -> str:
    lines = ["# readcli demo results", ""]
    lines.append(
        f"Seeds {extra['seeds']}, {extra['jobs']} worker processes x {extra['threads']} thread(s)"
        f"{_spare_note(extra)}, "
        f"{extra['seconds']:.0f} s wall. Learning rate chosen per world and method on dev; test read after."
    )
    lines.append("")
    for task, reports in outcome.sources.items():
        lines += [f"- {mastery_line(task, r)}" for r in reports]
    lines.append("")
    for table in tables:
        lines += [f"## {table.task} / {table.world}", ""]
        reference = source_only.get(table.task, {}).get(table.world)
        if reference:
            values = ", ".join(f"{k} {v:.2f}" for k, v in reference.items())
            lines += [f"Source backbone without adaptation (test): {values}.", ""]
        lines += [markdown_table(table), "", "```", text_table(table), "```", ""]
    lines.append("Verdicts: the paired two-stage bootstrap 95 % interval of the difference to READ-PVLA")
    lines.append("above 0 (better), below 0 (worse), else not separable; Holm: corrected across the rows")
    lines.append("of a world. (H) in the text tables: the verdict survives the Holm correction.")
    return "\n".join(lines) + "\n"


def payload(
    tables: Sequence[WorldTable], outcome: ProtocolOutcome, source_only: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    primary = {t.task: t.metrics[0] for t in tables}
    dev: dict[str, dict[float, float]] = {}
    for task, metric in primary.items():
        mine = {job: s for job, s in outcome.dev.items() if job.task == task}
        dev.update({"/".join(cell): by_lr for cell, by_lr in dev_table(mine, metric).items()})
    runs = [
        {**asdict(job), "seconds": s.seconds, **{m: float(np.mean(v)) for m, v in s.per_example.items()}}
        for group in (outcome.dev, outcome.test)
        for job, s in sorted(group.items())
    ]
    return _finite(
        {
            **extra,
            "sources": {
                t: [{**asdict(r), "directory": str(r.directory)} for r in reports]
                for t, reports in outcome.sources.items()
            },
            "source_only_test": source_only,
            "chosen_lr": {"/".join(cell): lr for cell, lr in sorted(outcome.chosen.items())},
            "dev_mean_by_lr": dev,
            "tables": [asdict(t) for t in tables],
            "runs": runs,
        }
    )


def write_outputs(
    out: Path,
    tables: Sequence[WorldTable],
    outcome: ProtocolOutcome,
    source_only: dict[str, Any],
    extra: dict[str, Any],
) -> tuple[Path, Path, Path]:
    paths = (out / "results.md", out / "results.json", out / "differences.png")
    atomic_write_text(paths[0], markdown(tables, outcome, source_only, extra))
    atomic_write_json(paths[1], payload(tables, outcome, source_only, extra))
    atomic_write_bytes(paths[2], plot_png(tables, source_only))
    return paths


def _finite(obj: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by None (std with one seed)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _spare_note(extra: Mapping[str, Any]) -> str:
    """How many runs the spare worker took while other processes kept the CPU busy (execute.py)."""
    if not extra.get("spare_worker"):
        return ""
    return f" (+1 while other processes were busy: {extra.get('spare_runs', 0)} runs)"
