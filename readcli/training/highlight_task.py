"""Highlight detection (YouTube Highlights, TVSum) as a `TrainTask`: UMT's saliency loss, PVLA, metrics.

The model is any backbone with Moment-DETR's inputs and a `saliency_scores` (B, N_V) output (UMT,
Moment-DETR). Loss: UMT's `DynamicBCELoss` on the saliency logits against the per-clip target scaled
to [0, 1] (YouTube: `match > 0`; TVSum: the annotators' mean, (mean - 1) / 4 = the official
(sum - 20) / 80), weighted by the clip mask and averaged over all B x N_V positions as the official
`reduction='mean'` does (under several processes: over global B x the global batch's longest video,
docs/distributed.md). Metrics: YouTube Highlights mAP or TVSum top-5 mAP, per domain and averaged
(readcli.evaluation). docs/umt.md.

Dimension letters: B batch, N_V clips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from readcli.alignment import PVLASettings
from readcli.data.collate import MomentBatch, collate_moments
from readcli.data.moment_dataset import MomentDataset
from readcli.errors import InvalidValueError, choices_text
from readcli.evaluation import tvsum_top5_map, youtube_highlight_map
from readcli.evaluation.rows import RowsLike
from readcli.training.distributed import all_reduce_max
from readcli.training.loop import EvalOutput, StepOutput, batches_of
from readcli.training.step import current_share
from readcli.training.task_base import IndexedTask, shuffled_moments

Metric = Callable[[RowsLike, RowsLike], dict[str, float]]  # (predictions, ground truth) -> metrics
# dataset -> (the range of its per-clip scores, its metric, the metric key prefix)
HIGHLIGHT_DATASETS: dict[str, tuple[tuple[float, float], Metric, str]] = {
    "youtube": ((0.0, 1.0), youtube_highlight_map, "mAP"),
    "tvsum": ((1.0, 5.0), tvsum_top5_map, "top5-mAP"),
}
# the annotation format each dataset's rows are read as (readcli.data.youtube_tvsum)
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


def saliency_bce(
    scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, positions: float | None = None
) -> torch.Tensor:
    """UMT's DynamicBCELoss: BCE-with-logits weighted by the clip mask, mean over all B x N_V.

    positions: None (official) divides by this batch's B x N_V; a number divides the masked sum by it
    instead, so that per-rank parts of a batch can add up to the whole batch's mean.
    """
    if positions is None:
        return F.binary_cross_entropy_with_logits(scores.float(), target.float(), weight=mask.float())
    terms = F.binary_cross_entropy_with_logits(
        scores.float(), target.float(), weight=mask.float(), reduction="none"
    )  # (B, N_V)
    return terms.sum() / positions


def bce_positions(batch_size: int, num_clips: int, device: torch.device) -> float | None:
    """The BCE normaliser of this rank's step: None (this batch's B x N_V) in one process; under
    several, B x the longest video of the whole global batch (the N_V one process pads to).

    The loop weights a rank's loss by B / global B (x world, then DDP's mean over ranks), so the ranks'
    masked sums over B x N_V(global) add up to the one-process sum over global B x N_V(global). A
    stand-in example (weight 0) is one of the batch's own, so it cannot raise the maximum.
    """
    share = current_share()
    if not share.job.enabled:
        return None
    longest = all_reduce_max(torch.tensor([num_clips], dtype=torch.int64, device=device), share.job)
    return float(batch_size * int(longest[0]))


@dataclass
class HighlightTask(IndexedTask):
    """Train on `train`, evaluate on `val` against its dataset rows (`val_ground_truth`)."""

    train: MomentDataset
    val: MomentDataset
    val_ground_truth: Sequence[Mapping[str, Any]]
    dataset: str
    pvla: PVLASettings | None = None
    eval_batch_size: int = 100

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        # clips the ground truth scores per qid: predictions are cut to it (features may be longer)
        self._gt_clips = {str(row["qid"]): len(row.get("match") or row.get("label") or ()) for row in
                          self.val_ground_truth}  # fmt: skip

    def train_index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        return shuffled_moments(self.train, batch_size, generator)

    def train_collate(self, indices: list[int]) -> MomentBatch:
        return collate_moments([self.train[i] for i in indices])

    def targets(self, batch: MomentBatch) -> torch.Tensor:
        """(B, N_V) in [0, 1]: the per-clip score scaled by the dataset's score range, 0 at padding."""
        low, high = HIGHLIGHT_DATASETS[self.dataset][0]
        scaled = (batch.saliency_all_labels - low) / (high - low)  # (B, N_V)
        return (scaled * batch.src_vid_mask).clamp(0.0, 1.0)

    def train_step(self, model: torch.nn.Module, batch: MomentBatch, device: torch.device) -> StepOutput:
        batch = batch.to(device)
        model.collect_block_states = self.wants_alignment()  # type: ignore[assignment]
        outputs = model(**batch.model_inputs())
        mask = batch.src_vid_mask  # (B, N_V)
        positions = bce_positions(mask.shape[0], mask.shape[1], device)
        loss = saliency_bce(outputs["saliency_scores"], self.targets(batch), mask, positions)
        parts = {"loss_saliency": loss}
        return StepOutput(total=self.add_alignment(loss, parts, outputs), parts=parts)

    @torch.no_grad()
    def predict(
        self,
        model: torch.nn.Module,
        dataset: MomentDataset,
        device: torch.device,
        indices: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """One row per video (of `dataset`, or of its examples at `indices`, in order):
        `pred_saliency_scores` for every clip that has features (as UMT, clips past the end of the
        features are left out of the evaluation, not ranked last)."""
        model.collect_block_states = False  # type: ignore[assignment]
        rows: list[dict[str, Any]] = []
        wanted = list(range(len(dataset))) if indices is None else list(indices)
        for chunk in batches_of(wanted, self.eval_batch_size):
            batch = collate_moments([dataset[i] for i in chunk]).to(device)
            scores = model(**batch.model_inputs())["saliency_scores"].float().cpu()  # (B, N_V)
            lengths = batch.src_vid_mask.sum(1).long().cpu().tolist()
            for qid, vid, row, n in zip(batch.qids, batch.vids, scores, lengths, strict=True):
                values = row[:n].tolist()[: self._gt_clips.get(str(qid), n)]
                rows.append({"qid": qid, "vid": vid, "pred_saliency_scores": values})
        return rows

    def eval_score(self, predictions: list[dict[str, Any]]) -> EvalOutput:
        metric = HIGHLIGHT_DATASETS[self.dataset][1]
        return EvalOutput(metrics=metric(predictions, list(self.val_ground_truth)), predictions=predictions)
