"""The demo's protocol, task-independent: which runs exist, how a learning rate is chosen, and the
order that keeps the test split sealed (docs/demo.md, "Protocol").

1. Selection: every (world, method, learning rate of the method's grid, seed) is adapted and scored
   on "dev" (carved from the labelled target pool).
2. Choice: per (world, method), the grid point with the best dev mean over seeds of the primary
   metric (ties: the smaller rate). `choose_lr` is given dev scores only.
3. Test: per (world, method, seed), the chosen rate is scored on "test". A test job exists only
   once its (world, method) choice exists, so no test score can reach a choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from readcli.demo.contract import RunScores, Split
from readcli.errors import InvalidValueError


@dataclass(frozen=True, order=True)
class Job:
    """One call of `DemoTask.run`."""

    task: str
    world: str
    method: str
    lr: float
    seed: int
    split: Split

    @property
    def cell(self) -> tuple[str, str, str]:
        """(task, world, method): the unit a learning rate is chosen for."""
        return (self.task, self.world, self.method)

    def label(self) -> str:
        return f"{self.task} {self.world} {self.method} lr {self.lr:g} seed {self.seed} ({self.split})"


def selection_jobs(
    task: str,
    worlds: Sequence[str],
    methods: Sequence[str],
    grids: Mapping[str, Sequence[float]],
    seeds: Sequence[int],
) -> list[Job]:
    """Every dev run of the selection stage, seed-major so that early results cover every method."""
    if not seeds:
        raise InvalidValueError("the protocol needs at least one seed")
    return [
        Job(task, world, method, float(lr), seed, "dev")
        for seed in seeds
        for world in worlds
        for method in methods
        for lr in grids[method]
    ]


def choose_lr(dev: Mapping[Job, RunScores], primary: str) -> dict[tuple[str, str, str], float]:
    """Per (task, world, method): the learning rate whose dev mean over seeds of `primary` is best.

    Only dev scores are accepted: a test score here would be a leak, and is refused.
    """
    means: dict[tuple[str, str, str], dict[float, list[float]]] = {}
    for job, scores in dev.items():
        if job.split != "dev":
            raise InvalidValueError(f"choose_lr got a {job.split} score ({job.label()}): only dev may choose")
        means.setdefault(job.cell, {}).setdefault(job.lr, []).append(
            float(np.mean(scores.per_example[primary]))
        )
    return {cell: max(sorted(by_lr), key=lambda lr: np.mean(by_lr[lr])) for cell, by_lr in means.items()}


def cells_complete(dev: Iterable[Job], planned: Sequence[Job]) -> set[tuple[str, str, str]]:
    """The (task, world, method) cells whose every planned dev run has finished."""
    done = set(dev)
    missing = {job.cell for job in planned if job not in done}
    return {job.cell for job in planned} - missing


def test_jobs(cell: tuple[str, str, str], lr: float, seeds: Sequence[int]) -> list[Job]:
    task, world, method = cell
    return [Job(task, world, method, lr, seed, "test") for seed in seeds]


def dev_table(dev: Mapping[Job, RunScores], primary: str) -> dict[tuple[str, str, str], dict[float, float]]:
    """Per cell, the dev mean of `primary` at each learning rate (reported beside the choice)."""
    out: dict[tuple[str, str, str], dict[float, list[float]]] = {}
    for job, scores in dev.items():
        out.setdefault(job.cell, {}).setdefault(job.lr, []).append(
            float(np.mean(scores.per_example[primary]))
        )
    return {cell: {lr: float(np.mean(v)) for lr, v in sorted(by.items())} for cell, by in out.items()}
