"""Highlight detection (YouTube Highlights, TVSum) as a `TrainTask`: UMT's saliency loss, PVLA, metrics.

The model is any backbone with Moment-DETR's inputs and a `saliency_scores` (B, N_V) output (UMT,
Moment-DETR). Loss: UMT's `DynamicBCELoss` on the saliency logits against the per-clip target scaled
to [0, 1] (YouTube: `match > 0`; TVSum: the annotators' mean, (mean - 1) / 4 = the official
(sum - 20) / 80), weighted by the clip mask and averaged over all B x N_V positions as the official
`reduction='mean'` does. Metrics: YouTube Highlights mAP or TVSum top-5 mAP, per domain and averaged
(readcli.evaluation). docs/umt.md.

Dimension letters: B batch, N_V clips.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from readcli.alignment import PVLASettings, pvla_loss
from readcli.data.collate import MomentBatch, collate_moments
from readcli.data.moments import MomentDataset
from readcli.errors import InvalidValueError, choices_text
from readcli.evaluation import tvsum_top5_map, youtube_highlight_map
from readcli.training.loop import EvalOutput, StepOutput, batches_of

# dataset -> (the range of its per-clip scores, its metric, the metric key prefix)
HIGHLIGHT_DATASETS: dict[str, tuple[tuple[float, float], Any, str]] = {
    "youtube": ((0.0, 1.0), youtube_highlight_map, "mAP"),
    "tvsum": ((1.0, 5.0), tvsum_top5_map, "top5-mAP"),
}
# the annotation format each dataset's rows are read as (readcli.data.highlights)
DATASET_FORMATS: dict[str, str] = {"youtube": "youtube_highlights", "tvsum": "tvsum"}


def check_dataset(name: str) -> str:
    if name not in HIGHLIGHT_DATASETS:
        raise InvalidValueError(
            f"--dataset {name!r} is not a highlight dataset: choose {choices_text(HIGHLIGHT_DATASETS)}"
        )
    return name


def average_metric(dataset: str) -> str:
    """The key of the mean over domains, e.g. `mAP-avg` (the metric that picks the best epoch)."""
    return f"{HIGHLIGHT_DATASETS[check_dataset(dataset)][2]}-avg"


def domain_metric(dataset: str, domain: str) -> str:
    return f"{HIGHLIGHT_DATASETS[check_dataset(dataset)][2]}-{domain}"


def saliency_bce(scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """UMT's DynamicBCELoss: BCE-with-logits weighted by the clip mask, mean over all B x N_V."""
    return F.binary_cross_entropy_with_logits(scores.float(), target.float(), weight=mask.float())


@dataclass
class HighlightTask:
    """Train on `train`, evaluate on `val` against its dataset rows (`val_ground_truth`)."""

    train: MomentDataset
    val: MomentDataset
    val_ground_truth: Sequence[Mapping[str, Any]]
    dataset: str
    pvla: PVLASettings | None = None
    eval_batch_size: int = 100

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        # clips the ground truth scores per qid: predictions are padded to it (features may be shorter)
        self._gt_clips = {str(row["qid"]): len(row.get("match") or row.get("label") or ()) for row in
                          self.val_ground_truth}  # fmt: skip

    def num_train_batches(self, batch_size: int) -> int:
        return -(-len(self.train) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[MomentBatch]:
        epoch = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        self.train.set_epoch(epoch)
        order = torch.randperm(len(self.train), generator=generator).tolist()
        for indices in batches_of(order, batch_size):
            yield collate_moments([self.train[i] for i in indices])

    def targets(self, batch: MomentBatch) -> torch.Tensor:
        """(B, N_V) in [0, 1]: the per-clip score scaled by the dataset's score range, 0 at padding."""
        low, high = HIGHLIGHT_DATASETS[self.dataset][0]
        scaled = (batch.saliency_all_labels - low) / (high - low)  # (B, N_V)
        return (scaled * batch.src_vid_mask).clamp(0.0, 1.0)

    def train_step(self, model: torch.nn.Module, batch: MomentBatch, device: torch.device) -> StepOutput:
        batch = batch.to(device)
        collect = self.pvla is not None and self.pvla.weight > 0
        model.collect_block_states = collect  # type: ignore[assignment]
        outputs = model(**batch.model_inputs())
        loss = saliency_bce(outputs["saliency_scores"], self.targets(batch), batch.src_vid_mask)
        parts = {"loss_saliency": loss}
        total = loss
        if collect:
            assert self.pvla is not None  # for mypy: `collect` implies it
            parts["loss_pvla"] = pvla_loss(outputs["block_states"], settings=self.pvla)
            total = total + parts["loss_pvla"]
        return StepOutput(total=total, parts=parts)

    @torch.no_grad()
    def predict(
        self, model: torch.nn.Module, dataset: MomentDataset, device: torch.device
    ) -> list[dict[str, Any]]:
        """One row per video: `pred_saliency_scores` for every annotated clip (missing clips last)."""
        model.collect_block_states = False  # type: ignore[assignment]
        rows: list[dict[str, Any]] = []
        for indices in batches_of(list(range(len(dataset))), self.eval_batch_size):
            batch = collate_moments([dataset[i] for i in indices]).to(device)
            scores = model(**batch.model_inputs())["saliency_scores"].float().cpu()  # (B, N_V)
            lengths = batch.src_vid_mask.sum(1).long().cpu().tolist()
            for qid, vid, row, n in zip(batch.qids, batch.vids, scores, lengths, strict=True):
                values = row[:n].tolist()
                wanted = self._gt_clips.get(str(qid), n)
                if wanted > n:  # clips without features rank below every scored clip
                    values += [min(values, default=0.0) - 1.0] * (wanted - n)
                rows.append({"qid": qid, "vid": vid, "pred_saliency_scores": values[:wanted]})
        return rows

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        predictions = self.predict(model, self.val, device)
        metric = HIGHLIGHT_DATASETS[self.dataset][1]
        return EvalOutput(metrics=metric(predictions, list(self.val_ground_truth)), predictions=predictions)
