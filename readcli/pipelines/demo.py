"""`readcli demo`: the paper's low-resource claim in miniature, offline (docs/demo.md).

Pretrain (or reuse) a small Moment-DETR on the synthetic source domain, adapt it to the shifted
target domain with every method and ablation for each seed, and write the table and the plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from readcli.errors import InvalidValueError, choices_text
from readcli.training.loop import ProgressEvent

Stage = Literal["pretrain", "reused", "adapt", "run_done"]


@dataclass(frozen=True)
class DemoRequest:
    """What to run: the profile (quick or default), seeds, output directory, optional method subset."""

    out: Path
    quick: bool = False
    seeds: int = 5
    methods: tuple[str, ...] = ()  # empty: every method and ablation
    cache: Path | None = None  # None: $READCLI_CACHE/demo or ~/.cache/readcli/demo
    first_seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 20:
            raise InvalidValueError(f"--seeds {self.seeds!r} is invalid: use an integer in 1..20")


@dataclass(frozen=True)
class DemoEvent:
    """Progress for the CLI: a stage, which run of how many, and the loop's own event when training."""

    stage: Stage
    label: str
    run: int = 0
    runs: int = 0
    loop: ProgressEvent | None = None


@dataclass
class DemoResult:
    profile: str
    pretrain_reused: bool
    backbone_dir: Path
    rows: list  # list[TableRow]; untyped here so this module imports nothing heavy at load
    source_only: dict[str, float]
    source_metrics: dict[str, float]
    paths: tuple[Path, ...]
    seconds: float
    run_seconds: dict[str, float] = field(default_factory=dict)


DemoProgress = Callable[[DemoEvent], None]


def run(request: DemoRequest, progress: DemoProgress | None = None) -> DemoResult:
    """Pretrain or reuse, adapt with every method for every seed, write DIR/results.{md,json} and the plot."""
    from readcli.demo.methods import DEMO_METHODS
    from readcli.demo.profiles import demo_profile
    from readcli.demo.report import summarise, write_outputs
    from readcli.demo.runner import adapt, ensure_pretrained, evaluate_source_only

    emit = progress or (lambda event: None)
    unknown = [m for m in request.methods if m not in DEMO_METHODS]
    if unknown:
        raise InvalidValueError(
            f"unknown demo method {unknown[0]!r}: choose from {choices_text(DEMO_METHODS)}"
        )
    started = time.perf_counter()
    profile = demo_profile("quick" if request.quick else "default")
    emit(DemoEvent("pretrain", "pretraining on the source domain (cached after the first run)"))
    pretrained = ensure_pretrained(
        profile, cache=request.cache, progress=lambda e: emit(DemoEvent("pretrain", "pretrain", loop=e))
    )
    if pretrained.reused:
        emit(DemoEvent("reused", f"reused the pretrained backbone in {pretrained.backbone_dir}"))
    source_only = evaluate_source_only(pretrained, profile)
    methods = [DEMO_METHODS[m] for m in (request.methods or tuple(DEMO_METHODS))]
    backbones = {"moment_detr": pretrained}
    if any(m.backbone == "umt" for m in methods):  # the UMT row adapts its own source-trained UMT
        emit(DemoEvent("pretrain", "pretraining UMT on the source domain (cached after the first run)"))
        backbones["umt"] = ensure_pretrained(
            profile,
            cache=request.cache,
            progress=lambda e: emit(DemoEvent("pretrain", "pretrain UMT", loop=e)),
            architecture="umt",
        )
    seeds = range(request.first_seed, request.first_seed + request.seeds)
    plan = [(method, seed) for seed in seeds for method in methods]
    outcomes = []
    for index, (method, seed) in enumerate(plan):
        label = f"{method.label}, seed {seed}"
        emit(DemoEvent("adapt", label, index, len(plan)))
        hook = _loop_hook(emit, label, index, len(plan))
        outcomes.append(adapt(method, seed, profile, backbones[method.backbone], progress=hook))
        emit(DemoEvent("run_done", label, index + 1, len(plan)))
    rows = summarise(outcomes)
    extra = {
        "profile": profile.name,
        "seeds": list(seeds),
        "train_samples": profile.train_samples,
        "pretrain_reused": pretrained.reused,
        "source_val_metrics": pretrained.source_metrics,
        "seconds": time.perf_counter() - started,
    }
    paths = write_outputs(request.out, rows, outcomes, reference=source_only, extra=extra)
    per_method = {m.key: sum(o.seconds for o in outcomes if o.key == m.key) for m in methods}
    return DemoResult(
        profile=profile.name,
        pretrain_reused=pretrained.reused,
        backbone_dir=pretrained.backbone_dir,
        rows=rows,
        source_only=source_only,
        source_metrics=pretrained.source_metrics,
        paths=paths,
        seconds=time.perf_counter() - started,
        run_seconds=per_method,
    )


def _loop_hook(emit: DemoProgress, label: str, index: int, total: int) -> Callable[[ProgressEvent], None]:
    return lambda event: emit(DemoEvent("adapt", label, index, total, loop=event))
