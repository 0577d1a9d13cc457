"""What readcli's tasks (grounding, highlight detection, summarization) share around the loop.

`IndexedTask` derives the loop's `TrainTask` methods (readcli/training/loop.py) from the four a task
really defines: `train_index_batches`, `train_collate`, `predict` and `eval_score`. `shuffled_moments`
is the epoch order of a moment dataset; `add_alignment` adds PVLA to a task loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from readcli.alignment import PVLASettings, pvla_loss
from readcli.data.moment_dataset import MomentDataset
from readcli.training.loop import EvalOutput, batches_of


class IndexedTask:
    """A task over a sized `train` and `val` set; every derived method is the same for all tasks."""

    train: Any
    val: Any
    pvla: PVLASettings | None  # each task's own field: None trains without alignment

    def wants_alignment(self) -> bool:
        """Whether a step adds an alignment loss (the model must then collect its block states)."""
        return wants_alignment(self.pvla)

    def add_alignment(
        self, total: torch.Tensor, parts: dict[str, torch.Tensor], outputs: Any
    ) -> torch.Tensor:
        """`total` plus the alignment loss on the forward's block states: PVLA here; a subclass may put
        another alignment in its place (the demo's pooled distances of the paper's Table 9)."""
        return add_alignment(total, parts, outputs, self.pvla)

    def train_index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        raise NotImplementedError

    def train_collate(self, indices: list[int]) -> Any:
        raise NotImplementedError

    def predict(
        self, model: Any, dataset: Any, device: torch.device, indices: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def eval_score(self, predictions: list[dict[str, Any]]) -> EvalOutput:
        raise NotImplementedError

    def num_train_batches(self, batch_size: int) -> int:
        return -(-len(self.train) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
        for indices in self.train_index_batches(batch_size, generator):
            yield self.train_collate(indices)

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        return self.eval_score(self.predict(model, self.val, device))

    # sharded evaluation under several processes (readcli.training.loop.TrainTask)
    def eval_size(self) -> int:
        return len(self.val)

    def eval_predict(
        self, model: torch.nn.Module, device: torch.device, indices: Sequence[int]
    ) -> list[dict[str, Any]]:
        return self.predict(model, self.val, device, indices)


def shuffled_moments(
    dataset: MomentDataset, batch_size: int, generator: torch.Generator
) -> Iterator[list[int]]:
    """An epoch of a moment dataset: its saliency pairs re-drawn, then shuffled global batches.

    Both draws come from `generator`, so an epoch's batches and pairs are the same on every rank and
    on resume.
    """
    epoch = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    dataset.set_epoch(epoch)  # re-draws the saliency pairs, reproducibly per epoch
    order = torch.randperm(len(dataset), generator=generator).tolist()
    yield from batches_of(order, batch_size)


def wants_alignment(pvla: PVLASettings | None) -> bool:
    """Whether a step computes PVLA (the model must then collect its block states)."""
    return pvla is not None and pvla.weight > 0


def add_alignment(
    total: torch.Tensor, parts: dict[str, torch.Tensor], outputs: Any, pvla: PVLASettings | None
) -> torch.Tensor:
    """`total` plus the weighted PVLA loss on the forward's block states, logged as `loss_pvla`."""
    if pvla is None or not wants_alignment(pvla):
        return total
    parts["loss_pvla"] = pvla_loss(outputs["block_states"], settings=pvla)
    return total + parts["loss_pvla"]
