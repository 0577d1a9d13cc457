"""Video-language summarization (How2) as a `TrainTask`: token cross-entropy + PVLA, ROUGE on generations.

Dimension letters: B batch, S input tokens, R target tokens, T video rows, L encoder layers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from readcli.alignment import PVLASettings
from readcli.backbones.vision_guided.config import GenerationSettings
from readcli.data.collate import SummaryBatch, collate_summaries
from readcli.data.how2 import How2Dataset, How2Limits
from readcli.evaluation import rouge_scores
from readcli.training.loop import EvalOutput, StepOutput, batches_of
from readcli.training.step import count_normaliser
from readcli.training.task_base import IndexedTask

log = logging.getLogger(__name__)


def batch_inputs(batch: SummaryBatch, device: torch.device) -> dict[str, torch.Tensor]:
    """The vision-guided forward's tensor arguments, on `device`."""
    return {
        "input_ids": batch.input_ids.to(device),  # (B, S)
        "attention_mask": batch.attention_mask.to(device),  # (B, S)
        "video": batch.video.to(device),  # (B, T, D_V)
        "video_mask": batch.video_mask.to(device),  # (B, T)
    }


@dataclass
class SummarizationTask(IndexedTask):
    """Train on `train`, evaluate ROUGE-1/2/L F1 of beam-searched summaries of `val`.

    pvla: None trains without the alignment loss; otherwise its weighted value is added to the token
    loss (logged as `loss_pvla`). The model is a `VisionGuidedSeq2Seq` (or anything with its forward,
    `generate` and `decode`).
    """

    train: How2Dataset
    val: How2Dataset
    tokenizer: Any
    limits: How2Limits
    pvla: PVLASettings | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    eval_batch_size: int = 16

    def collate(self, dataset: How2Dataset, indices: list[int]) -> SummaryBatch:
        return collate_summaries([dataset[i] for i in indices], self.tokenizer, self.limits)

    def train_index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        order = torch.randperm(len(self.train), generator=generator).tolist()
        yield from batches_of(order, batch_size)

    def train_collate(self, indices: list[int]) -> SummaryBatch:
        return self.collate(self.train, indices)

    def train_step(self, model: torch.nn.Module, batch: SummaryBatch, device: torch.device) -> StepOutput:
        model.collect_block_states = self.wants_alignment()  # type: ignore[assignment]
        labels = batch.labels.to(device)  # (B, R), -100 = padding
        outputs = model(**batch_inputs(batch, device), labels=labels)
        total: torch.Tensor = outputs["loss"]  # mean over this batch's target tokens
        tokens = count_normaliser(int((labels != -100).sum()), device)
        if tokens is not None:  # several processes: the mean over the global batch's tokens
            total = (
                torch.nn.functional.cross_entropy(
                    outputs["logits"].flatten(0, 1).float(),
                    labels.flatten(),
                    ignore_index=-100,
                    reduction="sum",
                )
                / tokens
            )
        parts = {"loss_lm": total}
        return StepOutput(total=self.add_alignment(total, parts, outputs), parts=parts)

    @torch.no_grad()
    def predict(
        self, model: Any, dataset: How2Dataset, device: torch.device, indices: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        """One row per example (or per example at `indices`), in order: video_id, summary, reference."""
        model.collect_block_states = False
        rows: list[dict[str, Any]] = []
        wanted = list(range(len(dataset))) if indices is None else list(indices)
        for chunk in batches_of(wanted, self.eval_batch_size):
            batch = self.collate(dataset, chunk)
            ids = model.generate(**batch_inputs(batch, device), settings=self.generation)  # (B, R')
            for index, summary in zip(chunk, model.decode(ids), strict=True):
                example = dataset.examples[index]
                rows.append({"video_id": example.video_id, "summary": summary, "reference": example.summary})
        return rows

    def eval_score(self, rows: list[dict[str, Any]]) -> EvalOutput:
        metrics = rouge_scores([r["summary"] for r in rows], [r["reference"] for r in rows])
        return EvalOutput(metrics=metrics, predictions=rows)
