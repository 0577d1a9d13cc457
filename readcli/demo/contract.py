"""What the demo's protocol runner asks of a task (grounding or summarization): one contract, so the
learning-rate selection, the paired seeds and the statistics are written once for both tasks.

A task knows its worlds (named target variants), how to make its pretrained source backbone (cached,
with its source-mastery figures), and how to adapt one method once and score it per example. The
runner never sees a task's data: it only asks for per-example scores on the dev or the test split,
and it asks for "test" only after the learning rate has been chosen on "dev" (docs/demo.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

Split = Literal["dev", "test"]


@dataclass(frozen=True)
class SourceReport:
    """The pretrained source backbone of one architecture and how well it masters its own domain."""

    architecture: str  # "moment_detr", "umt", "vg_bart"
    directory: Path
    reused: bool  # taken from the cache rather than trained now
    seconds: float  # pretraining wall time (0 when reused and not recorded)
    metrics: dict[str, float]  # on the source domain's held-out queries


@dataclass(frozen=True)
class RunScores:
    """One (world, method, learning rate, seed) adaptation scored on one split.

    `per_example[metric]` has shape (Q,): the metric of each evaluation example, in a fixed example
    order that is the same for every method and seed of the world, so the bootstrap can pair them.
    The split-level metric is the mean over examples.
    """

    per_example: dict[str, np.ndarray]
    trainable: int
    total: int
    seconds: float


class DemoTask(Protocol):
    """A task the demo can benchmark."""

    name: str  # "tlg" or "vls"
    metrics: tuple[str, ...]  # reported metrics, the primary (used for selection) first
    worlds: tuple[str, ...]  # target variants, e.g. ("temporal", "partial", "control")

    def methods(self) -> tuple[str, ...]:
        """The method keys this task runs (keys of readcli.demo.methods.DEMO_METHODS)."""
        ...

    def prepare(self, cache: Path) -> tuple[SourceReport, ...]:
        """Make (or reuse) the worlds and the pretrained source backbone(s); report their mastery."""
        ...

    def run(self, world: str, method: str, lr: float, seed: int, split: Split) -> RunScores:
        """Adapt `method` on world `world`'s low-resource subset fixed by `seed` at learning rate `lr`,
        then score it on `split`. Deterministic given its arguments (and the thread count)."""
        ...
