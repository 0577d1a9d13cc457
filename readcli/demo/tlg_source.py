"""The grounding demo's data access and its source backbones: splits as tasks, pretraining with the
mastery check, and the pooled-distance alignment losses of the paper's Table 9 ablation.

Dimension letters: L encoder blocks, B batch, N_V clips, N_L words, d width.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from readcli.backbones.registry import build_backbone, load_backbone, save_backbone
from readcli.data import load_grounding_split
from readcli.data.layout import open_layout
from readcli.data.moment_dataset import MomentDataset
from readcli.demo.contract import SourceReport
from readcli.demo.fit import fit, query_scores
from readcli.demo.methods import DemoMethod
from readcli.demo.pooled import add_pooled_alignment
from readcli.demo.tlg_profile import TlgProfile
from readcli.evaluation import read_jsonl
from readcli.fileio import atomic_write_json
from readcli.seeding import seed_everything
from readcli.training.grounding_loss import GroundingLossWeights
from readcli.training.grounding_predict import PredictionSettings
from readcli.training.grounding_task import GroundingTask

LAYOUT_SPLIT = {"dev": "val"}  # the dataset layout knows dev.jsonl as the "val" split (an alias)


@lru_cache(maxsize=64)
def split_data(
    domain_dir: Path, split: str, samples: int | None = None, seed: int = 0
) -> tuple[MomentDataset, tuple[dict[str, Any], ...]]:
    """One split of a world as a dataset and its annotation rows (cached per process: runs share it).

    Only `split`'s own file is opened: learning-rate selection asks for "train" and "dev" alone, so
    the test file is never read before the choice is made (tests/test_demo_protocol.py).
    """
    name = LAYOUT_SPLIT.get(split, split)
    loaded = load_grounding_split(domain_dir, name, samples=samples, seed=seed)
    wanted = {a.qid for a in loaded.dataset.annotations} if samples is not None else None
    rows = read_jsonl(open_layout(domain_dir).split_file(name)).rows
    chosen = tuple(dict(r) for r in rows if wanted is None or r["qid"] in wanted)
    return loaded.dataset, chosen


class PooledAlignmentTask(GroundingTask):
    """Grounding with a distance between mean-pooled video and text states at every block instead of
    partial OT (the paper's Table 9: "Cosine" and "L2" in place of PVLA), weighted like PVLA."""

    kind: str = "pooled-cosine"

    def wants_alignment(self) -> bool:
        return True

    def add_alignment(
        self, total: torch.Tensor, parts: dict[str, torch.Tensor], outputs: Any
    ) -> torch.Tensor:
        return add_pooled_alignment(total, parts, outputs, self.pvla, self.kind)


def make_task(
    domain_dir: Path, split: str, method: DemoMethod | None, *, samples: int | None, seed: int
) -> GroundingTask:
    """A `GroundingTask` training on `samples` queries of "train" (all with None) and scoring `split`."""
    train, _ = split_data(domain_dir, "train", samples, seed)
    val, rows = split_data(domain_dir, split)
    pvla = method.pvla if method is not None else None
    kind = method.alignment if method is not None else "ot"
    cls = GroundingTask if kind == "ot" or pvla is None else PooledAlignmentTask
    task = cls(
        train=train,
        val=val,
        val_ground_truth=list(rows),
        loss_weights=GroundingLossWeights(),
        pvla=pvla,
        prediction=PredictionSettings(clip_length=2.0),
    )
    if isinstance(task, PooledAlignmentTask):
        task.kind = kind
    return task


def score(task: GroundingTask, model: torch.nn.Module) -> dict[str, Any]:
    """Per-query metrics of `model` on the task's evaluation split."""
    predictions = task.predict(model, task.val, torch.device("cpu"))
    return query_scores(predictions, list(task.val_ground_truth))


@dataclass(frozen=True)
class Pretrained:
    directory: Path
    report: SourceReport


def ensure_pretrained(profile: TlgProfile, worlds: Path, cache: Path, architecture: str) -> Pretrained:
    """The backbone pretrained on the source (every parameter), from the cache or trained now."""
    directory = cache / f"backbone-{profile.pretrain_digest(architecture)}"
    record = directory / "pretrain.json"
    if (directory / "config.json").is_file() and record.is_file():
        meta = json.loads(record.read_text(encoding="utf-8"))
        report = SourceReport(architecture, directory, True, float(meta["seconds"]), dict(meta["metrics"]))
        return Pretrained(directory, report)
    started = time.perf_counter()
    seed_everything(profile.pretrain.seed)
    model = build_backbone(profile.backbone_config(architecture))
    task = make_task(worlds / "source", "val", None, samples=None, seed=0)
    fit(model, task, profile.pretrain)
    with torch.no_grad():
        per_query = score(task, model)
    metrics = {name: float(values.mean()) for name, values in per_query.items()}
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    seconds = time.perf_counter() - started
    save_backbone(model, directory)  # config.json is written last: a directory with it is complete
    atomic_write_json(
        record, {"profile": profile.name, "seconds": seconds, "metrics": metrics, "queries": len(task.val)}
    )
    return Pretrained(directory, SourceReport(architecture, directory, False, seconds, metrics))


def load_pretrained(directory: Path) -> torch.nn.Module:
    return load_backbone(directory)
