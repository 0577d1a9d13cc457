"""Pretrain the demo backbone on the source domain (cached), then adapt it to the target with a method.

Both stages go through the same code as `readcli finetune`: datasets loaded from disk with
`load_grounding_split`, `GroundingTask` (official losses, PVLA, official QVHighlights metrics) and
the shared training loop. docs/demo.md explains the choices.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from readcli.adapters.accounting import count_parameters
from readcli.adapters.inject import inject
from readcli.backbones.registry import build_backbone, load_backbone, save_backbone
from readcli.data import load_grounding_split
from readcli.data.layout import open_layout
from readcli.demo.methods import DemoMethod
from readcli.demo.profiles import DemoProfile
from readcli.demo.world import ensure_world
from readcli.evaluation import read_jsonl
from readcli.fileio import atomic_write_json, cache_dir
from readcli.training.grounding_loss import GroundingLossWeights
from readcli.training.grounding_predict import PredictionSettings
from readcli.training.grounding_task import GroundingTask
from readcli.training.loop import ProgressCallback, resolve_device, seed_everything, train

log = logging.getLogger(__name__)
REPORTED = ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7")


def demo_cache() -> Path:
    """`$READCLI_CACHE/demo`, else `~/.cache/readcli/demo` (the backbone presets' cache root)."""
    return cache_dir() / "demo"


@dataclass(frozen=True)
class Pretrained:
    """The source-trained backbone directory, the world it came from, and whether it was reused."""

    backbone_dir: Path
    world_dir: Path
    reused: bool
    source_metrics: dict[str, float]


@dataclass(frozen=True)
class RunOutcome:
    """One (method, seed) adaptation: last-epoch target metrics, parameter counts, wall time."""

    key: str
    seed: int
    metrics: dict[str, float]
    trainable: int
    total: int
    seconds: float


def grounding_task(data: Path, *, samples: int | None, seed: int, method: DemoMethod | None) -> GroundingTask:
    """Train/val splits of a world domain as a `GroundingTask` (val ground truth read from the file)."""
    train_split = load_grounding_split(data, "train", samples=samples, seed=seed)
    val_split = load_grounding_split(data, "val", expected_spec=train_split.spec)
    rows = read_jsonl(open_layout(data).split_file("val")).rows
    return GroundingTask(
        train=train_split.dataset,
        val=val_split.dataset,
        val_ground_truth=[dict(row) for row in rows],
        loss_weights=GroundingLossWeights(),
        pvla=method.pvla if method is not None else None,
        prediction=PredictionSettings(clip_length=train_split.spec.clip_len),
    )


def ensure_pretrained(
    profile: DemoProfile,
    *,
    cache: Path | None = None,
    progress: ProgressCallback | None = None,
    architecture: str = "moment_detr",
) -> Pretrained:
    """The backbone (Moment-DETR or UMT) pretrained on the source domain: from the cache, or trained."""
    root = cache if cache is not None else demo_cache()
    world_dir, _ = ensure_world(profile.world, root / f"world-{profile.world.digest()}")
    directory = root / f"backbone-{profile.pretrain_digest(architecture)}"
    meta_path = directory / "pretrain.json"
    if (directory / "config.json").is_file() and meta_path.is_file():
        meta = _read_record(meta_path)
        return Pretrained(directory, world_dir, True, dict(meta.get("source_metrics", {})))
    seed_everything(profile.pretrain.seed)
    model = build_backbone(profile.backbone_config(architecture))
    task = grounding_task(world_dir / "source", samples=None, seed=profile.pretrain.seed, method=None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="readcli-demo-pretrain-") as run_dir:
        result = train(model, task, profile.pretrain, Path(run_dir), progress=progress)
    # JSON has no NaN: drop the metrics a world without long moments leaves undefined (MR-long-mAP)
    metrics = {k: float(v) for k, v in result.state.history[-1].items() if k != "epoch" and math.isfinite(v)}
    save_backbone(model, directory)  # config.json is written last: a directory with it is complete
    meta = {"profile": profile.name, "seconds": time.perf_counter() - started, "source_metrics": metrics}
    atomic_write_json(meta_path, meta)
    log.info("pretrained the demo backbone in %.0f s: %s", meta["seconds"], directory)
    return Pretrained(directory, world_dir, False, metrics)


def _read_record(path: Path) -> dict[str, Any]:
    """The pretraining record (a small JSON object) written next to the cached backbone."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def evaluate_source_only(pretrained: Pretrained, profile: DemoProfile) -> dict[str, float]:
    """The source backbone on the target val set, without adaptation: how much the shift costs."""
    task = grounding_task(pretrained.world_dir / "target", samples=None, seed=0, method=None)
    model = load_backbone(pretrained.backbone_dir)
    with torch.no_grad():
        return task.evaluate(model, resolve_device(profile.adapt.device)).metrics


def adapt(
    method: DemoMethod,
    seed: int,
    profile: DemoProfile,
    pretrained: Pretrained,
    *,
    progress: ProgressCallback | None = None,
) -> RunOutcome:
    """Inject `method` into the pretrained backbone and train it on `train_samples` target queries."""
    started = time.perf_counter()
    task = grounding_task(
        pretrained.world_dir / "target", samples=profile.train_samples, seed=seed, method=method
    )
    model = load_backbone(pretrained.backbone_dir)
    seed_everything(seed)  # adapter initialisation is part of the run's seed
    inject(model, method.settings)
    settings = replace(profile.adapt, seed=seed)
    with tempfile.TemporaryDirectory(prefix="readcli-demo-adapt-") as run_dir:
        result = train(model, task, settings, Path(run_dir), progress=progress)
    # the last epoch, not the best: picking the best epoch on the set we report would flatter every row
    last = result.state.history[-1]
    count = count_parameters(model)
    return RunOutcome(
        key=method.key,
        seed=seed,
        metrics={name: float(last[name]) for name in REPORTED},
        trainable=count.trainable,
        total=count.total,
        seconds=time.perf_counter() - started,
    )
