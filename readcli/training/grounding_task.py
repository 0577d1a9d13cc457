"""Temporal language grounding as a `TrainTask`: official Moment-DETR losses + PVLA, official metrics.

Under several processes the span and gIoU parts divide by the global batch's matched windows (DETR's
`num_boxes`), so that 2 ranks give the one-process loss exactly (docs/distributed.md).

Dimension letters: B batch, N_V clips, N_L words, L encoder blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from readcli.alignment import PVLASettings
from readcli.data.collate import MomentBatch, collate_moments
from readcli.data.moment_dataset import MomentDataset
from readcli.evaluation import evaluate_qvhighlights
from readcli.training.grounding_loss import (
    GroundingCriterion,
    GroundingLossWeights,
    GroundingTargets,
    matched_count,
)
from readcli.training.grounding_predict import PredictionSettings, QueryMeta, predictions_from_outputs
from readcli.training.loop import EvalOutput, StepOutput, batches_of
from readcli.training.step import count_normaliser
from readcli.training.task_base import IndexedTask, shuffled_moments


@dataclass
class GroundingTask(IndexedTask):
    """Train on `train`, evaluate on `val` against `val_ground_truth` (official QVHighlights rows).

    pvla: None trains without the alignment loss; otherwise its weighted value is added to the task
    loss and logged as `loss_pvla`.
    """

    train: MomentDataset
    val: MomentDataset
    val_ground_truth: Sequence[Mapping[str, Any]]
    loss_weights: GroundingLossWeights
    pvla: PVLASettings | None = None
    prediction: PredictionSettings | None = None
    eval_batch_size: int = 100

    def __post_init__(self) -> None:
        self.criterion = GroundingCriterion(self.loss_weights)

    def train_index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        return shuffled_moments(self.train, batch_size, generator)

    def train_collate(self, indices: list[int]) -> MomentBatch:
        return collate_moments([self.train[i] for i in indices])

    def train_step(self, model: torch.nn.Module, batch: MomentBatch, device: torch.device) -> StepOutput:
        batch = batch.to(device)
        model.collect_block_states = self.wants_alignment()  # type: ignore[assignment]
        outputs = model(**batch.model_inputs())
        targets = GroundingTargets(
            spans=batch.span_labels,
            saliency_pos=batch.saliency_pos_labels,
            saliency_neg=batch.saliency_neg_labels,
        )
        num_boxes = count_normaliser(matched_count(targets.spans, outputs["pred_spans"].shape[1]), device)
        loss = self.criterion(outputs, targets, num_boxes=num_boxes)
        parts = {k: v for k, v in loss.parts.items() if k != "class_error"}
        return StepOutput(total=self.add_alignment(loss.total, parts, outputs), parts=parts)

    @torch.no_grad()
    def predict(
        self,
        model: torch.nn.Module,
        dataset: MomentDataset,
        device: torch.device,
        indices: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Prediction rows for `dataset` (or for its examples at `indices`), in order."""
        model.collect_block_states = False  # type: ignore[assignment]
        rows: list[dict[str, Any]] = []
        wanted = list(range(len(dataset))) if indices is None else list(indices)
        for chunk in batches_of(wanted, self.eval_batch_size):
            batch = collate_moments([dataset[i] for i in chunk]).to(device)
            outputs = model(**batch.model_inputs())
            metas = [
                QueryMeta(qid=q, query=t, vid=v, duration=d)
                for q, t, v, d in zip(batch.qids, batch.queries, batch.vids, batch.durations, strict=True)
            ]
            rows.extend(predictions_from_outputs(outputs, batch.src_vid_mask, metas, self.prediction))
        return rows

    def eval_score(self, predictions: list[dict[str, Any]]) -> EvalOutput:
        metrics = evaluate_qvhighlights(predictions, list(self.val_ground_truth))
        return EvalOutput(metrics=metrics, predictions=predictions)
