"""The grounding half of `finetune`: data, backbone, method and task assembled, then trained."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from readcli.adapters import MethodSettings, save_bundle
from readcli.adapters.inject import inject
from readcli.alignment import PVLASettings
from readcli.backbones.registry import load_backbone
from readcli.data import load_grounding_split
from readcli.data.layout import open_layout
from readcli.data.spec import VideoFeatureSpec
from readcli.evaluation import read_jsonl
from readcli.fileio import atomic_write_text
from readcli.pipelines.finetune import BEST_DIR, FinetuneRequest, RecordedRun
from readcli.training.grounding_loss import GroundingLossWeights
from readcli.training.grounding_predict import PredictionSettings
from readcli.training.grounding_task import GroundingTask
from readcli.training.loop import EvalOutput, seed_everything


@dataclass
class GroundingRun(RecordedRun):
    request: FinetuneRequest
    model: torch.nn.Module
    task: GroundingTask
    spec: VideoFeatureSpec
    skipped_missing: int

    def _save_best(self, out: Path, model: torch.nn.Module, evaluation: EvalOutput, epoch: int) -> None:
        request = self.request
        extra = {
            "feature_spec": self.spec.to_json(),
            "pvla": self.task.pvla.__dict__ if self.task.pvla is not None else None,
            "epoch": epoch,
            "metrics": evaluation.metrics,
            "data": request.data,
            "train_samples": request.train_samples,
            "seed": request.train.seed,
        }
        save_bundle(
            model, out / BEST_DIR, backbone_name=request.backbone, task=request.task, extra_config=extra
        )
        lines = "".join(json.dumps(row) + "\n" for row in evaluation.predictions)
        atomic_write_text(out / "best_val_preds.jsonl", lines)


def prepare_grounding_run(request: FinetuneRequest, pvla: PVLASettings | None) -> GroundingRun:
    """Load data and backbone, check they fit, inject the method: everything before the first step."""
    settings = MethodSettings(method=request.method, bottleneck=request.bottleneck, rnn=request.rnn)
    train_split = load_grounding_split(
        request.data,
        "train",
        samples=request.train_samples,
        seed=request.train.seed,
        skip_missing=request.skip_missing,
    )
    val_split = load_grounding_split(
        request.data, "val", expected_spec=train_split.spec, skip_missing=request.skip_missing
    )
    model = load_backbone(request.backbone)
    config: Any = model.config  # Moment-DETR's MomentDETRConfig
    train_split.spec.require_input_dims(
        video_dim=config.v_feat_dim, text_dim=config.t_feat_dim, model=f"backbone {request.backbone}"
    )
    seed_everything(request.train.seed)  # adapter initialisation is part of the run's seed
    inject(model, settings)
    val_qids = {str(a.qid) for a in val_split.dataset.annotations}
    val_rows = read_jsonl(open_layout(request.data).split_file("val"))
    ground_truth = [dict(row) for row in val_rows.rows if str(row.get("qid")) in val_qids]
    task = GroundingTask(
        train=train_split.dataset,
        val=val_split.dataset,
        val_ground_truth=ground_truth,
        loss_weights=GroundingLossWeights(),
        pvla=pvla,
        prediction=PredictionSettings(clip_length=train_split.spec.clip_len),
    )
    skipped = train_split.report.skipped_count + val_split.report.skipped_count
    return GroundingRun(request, model, task, train_split.spec, skipped)
