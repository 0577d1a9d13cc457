"""The grounding half of `finetune`: data, backbone, method and task assembled, then trained.

QVHighlights-style data trains a `GroundingTask`; YouTube Highlights and TVSum (`request.dataset`, or
the data's own format) train a `HighlightTask` on one domain (`request.domain`) or on all rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from readcli.adapters import method_settings, save_bundle
from readcli.adapters.inject import inject
from readcli.alignment import PVLASettings
from readcli.backbones.registry import load_backbone
from readcli.data import load_grounding_split
from readcli.data.feature_spec import VideoFeatureSpec
from readcli.data.layout import open_layout
from readcli.errors import InvalidValueError
from readcli.evaluation import read_jsonl
from readcli.fileio import atomic_write_text
from readcli.pipelines.finetune_record import BEST_DIR, RecordedRun
from readcli.pipelines.finetune_request import GroundingFinetuneRequest
from readcli.seeding import seed_everything
from readcli.training.grounding_loss import GroundingLossWeights
from readcli.training.grounding_predict import PredictionSettings
from readcli.training.grounding_task import GroundingTask
from readcli.training.guards import require_finite_weights
from readcli.training.highlight_task import DATASET_FORMATS, HighlightTask, average_metric, check_dataset
from readcli.training.loop import EvalOutput

DEFAULT_SELECT = "MR-full-mAP"  # the tlg default; highlight datasets select on their domain average


@dataclass
class GroundingRun(RecordedRun):
    request: GroundingFinetuneRequest
    model: torch.nn.Module
    task: GroundingTask | HighlightTask
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


def prepare_grounding_run(request: GroundingFinetuneRequest, pvla: PVLASettings | None) -> GroundingRun:
    """Load data and backbone, check they fit, inject the method: everything before the first step."""
    settings = method_settings(request.method, bottleneck=request.bottleneck, rnn=request.rnn)
    if request.domain is not None and request.domain.lower() == "all":
        raise InvalidValueError(
            "domain 'all' trains one run per domain: use readcli.pipelines.finetune_domains.run_domains "
            "(the CLI does this for --domain all)"
        )
    train_split = load_grounding_split(
        request.data,
        "train",
        domain=request.domain,
        samples=request.train_samples,
        seed=request.train.seed,
        skip_missing=request.skip_missing,
    )
    val_split = load_grounding_split(
        request.data,
        "val",
        domain=request.domain,
        expected_spec=train_split.spec,
        skip_missing=request.skip_missing,
    )
    dataset = _highlight_dataset(request, train_split.dataset.annotations[0].format)
    model = load_backbone(request.backbone)
    require_finite_weights(model, f"backbone {request.backbone}")  # before --out exists, not blamed on --lr
    config: Any = model.config  # MomentDETRConfig or UMTConfig: both name their input widths so
    train_split.spec.require_input_dims(
        video_dim=config.v_feat_dim,
        text_dim=config.t_feat_dim or train_split.spec.text_dim,  # 0: a UMT that reads no text
        audio_dim=int(getattr(config, "a_feat_dim", 0)),  # Moment-DETR has none: audio data is refused
        model=f"backbone {request.backbone}",
    )
    seed_everything(request.train.seed)  # adapter initialisation is part of the run's seed
    inject(model, settings)
    val_qids = {str(a.qid) for a in val_split.dataset.annotations}
    val_rows = read_jsonl(open_layout(request.data).split_file("val"))
    ground_truth = [dict(row) for row in val_rows.rows if str(row.get("qid")) in val_qids]
    task: GroundingTask | HighlightTask
    if dataset is not None:
        task = HighlightTask(train_split.dataset, val_split.dataset, ground_truth, dataset, pvla=pvla)
        if request.train.select_metric == DEFAULT_SELECT:
            request = replace(request, train=replace(request.train, select_metric=average_metric(dataset)))
    else:
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


def _highlight_dataset(request: GroundingFinetuneRequest, data_format: str) -> str | None:
    """ "youtube" / "tvsum" when the request or the data's format says so; a mismatch is refused."""
    found = next((name for name, fmt in DATASET_FORMATS.items() if fmt == data_format), None)
    if request.dataset is None:
        return found
    check_dataset(request.dataset)
    if DATASET_FORMATS[request.dataset] != data_format:
        raise InvalidValueError(
            f"--dataset {request.dataset} does not fit {request.data}: its rows are {data_format} rows"
        )
    return request.dataset
