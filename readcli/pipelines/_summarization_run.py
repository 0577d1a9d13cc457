"""The summarization half of `finetune` (--task vls): How2 data, a vision-guided backbone, method and task."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from readcli.adapters import method_settings, save_bundle
from readcli.adapters.inject import inject
from readcli.alignment import PVLASettings
from readcli.backbones.vision_guided.checkpoint_io import load_vision_guided
from readcli.backbones.vision_guided.config import GenerationSettings
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq
from readcli.data.how2 import How2Dataset, How2Limits, load_how2_split
from readcli.fileio import atomic_write_text
from readcli.pipelines.finetune_record import BEST_DIR, RecordedRun
from readcli.pipelines.finetune_request import SummarizationFinetuneRequest
from readcli.seeding import seed_everything
from readcli.training.guards import require_finite_weights
from readcli.training.loop import EvalOutput
from readcli.training.summarization_task import SummarizationTask

log = logging.getLogger(__name__)

TASK = "vls"
SUMMARIES_FILE = "best_val_summaries.txt"


def generation_settings(request: SummarizationFinetuneRequest) -> GenerationSettings:
    return GenerationSettings(
        beams=request.beams,
        no_repeat_ngram_size=request.no_repeat_ngram_size,
        max_length=request.max_summary_length,
    )


@dataclass
class SummarizationRun(RecordedRun):
    request: SummarizationFinetuneRequest
    model: VisionGuidedSeq2Seq
    task: SummarizationTask
    skipped_missing: int

    def _save_best(self, out: Path, model: torch.nn.Module, evaluation: EvalOutput, epoch: int) -> None:
        request, task = self.request, self.task
        extra = {
            "video_dim": self.model.config.video_dim,
            "vision_guided": self.model.config.to_dict(),  # summarize rebuilds this fusion
            "limits": asdict(task.limits),
            "generation": asdict(task.generation),
            "pvla": task.pvla.__dict__ if task.pvla is not None else None,
            "epoch": epoch,
            "metrics": evaluation.metrics,
            "data": request.data,
            "train_samples": request.train_samples,
            "seed": request.train.seed,
        }
        save_bundle(model, out / BEST_DIR, backbone_name=request.backbone, task=TASK, extra_config=extra)
        rows = evaluation.predictions
        atomic_write_text(out / "best_val_preds.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        # the How2 layout, so `readcli evaluate --task vls --format how2` scores it against desc.tok.txt
        atomic_write_text(out / SUMMARIES_FILE, "".join(f"{r['video_id']} {r['summary']}\n" for r in rows))


def prepare_summarization_run(
    request: SummarizationFinetuneRequest, pvla: PVLASettings | None
) -> SummarizationRun:
    """Load backbone and data, check they fit, inject the method: everything before the first step."""
    settings = method_settings(request.method, bottleneck=request.bottleneck, rnn=request.rnn)
    generation = generation_settings(request)  # validates before any heavy work
    seed_everything(request.train.seed)  # a new fusion head's initialisation is part of the run's seed
    model = load_vision_guided(request.backbone, video_dim=request.video_dim, fusion=request.fusion_options)
    require_finite_weights(model, f"backbone {request.backbone}")  # before --out exists, not blamed on --lr
    limits = How2Limits(video_dim=model.config.video_dim)
    train_split = load_how2_split(
        request.data,
        "train",
        limits=limits,
        samples=request.train_samples,
        seed=request.train.seed,
        skip_missing=request.skip_missing,
    )
    val_split = load_how2_split(request.data, "val", limits=limits, skip_missing=request.skip_missing)
    seed_everything(request.train.seed)  # adapter initialisation too
    inject(model, settings)
    task = SummarizationTask(
        train=How2Dataset(train_split, limits),
        val=How2Dataset(val_split, limits),
        tokenizer=model.tokenizer,
        limits=limits,
        pvla=pvla,
        generation=generation,
        eval_batch_size=request.train.batch_size,
    )
    skipped = len(train_split.report.missing_features) + len(val_split.report.missing_features)
    return SummarizationRun(request, model, task, skipped)
