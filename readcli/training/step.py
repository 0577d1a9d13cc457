"""One optimisation step, in one process or as one rank of several: autocast, a rank-consistent
finite check, backward (DDP averages the gradients), clipping, the optimiser step.

While the task's `train_step` runs, `current_share()` tells it this rank's share of the global batch,
for losses whose normaliser is a batch-level count (docs/distributed.md, "Losses normalised by a
count").

Kept apart from the loop (readcli/training/loop.py) so that benchmarks time exactly the loop's step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from readcli.errors import TrainingError
from readcli.training.distributed import Dist, all_reduce_sum


@dataclass
class StepOutput:
    """One training step's loss: the total to differentiate and its named parts (for logs and checks)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Share:
    """The part of the global batch that the running `train_step` computes (docs/distributed.md).

    weight: the loop's loss weight for this rank, part size x world / global batch size (1 in one
    process, 0 for the stand-in example of an empty part). The rank's loss is multiplied by it and DDP
    averages over ranks, so the update is the gradient of sum over ranks of weight / world x loss.
    """

    weight: float = 1.0
    job: Dist = field(default_factory=Dist)

    def denominator(self, global_count: float) -> float:
        """What to divide this rank's *sum* of per-item losses by so that, after the weighting and
        DDP's average, the ranks' contributions add up to the mean over `global_count` items of the
        whole global batch: `global_count x weight / world` (DETR's `num_boxes`, share-corrected).

        0 for a stand-in (weight 0): the caller then keeps its own local mean, which is weighted 0.
        """
        return global_count * self.weight / self.job.world


_SHARE: ContextVar[Share | None] = ContextVar("readcli_step_share", default=None)  # None: one whole batch


def current_share() -> Share:
    """This rank's share of the step being run by `Stepper.step`; one whole batch outside of it.

    For losses normalised by a batch-level count (matched windows, padded positions) rather than by
    examples: the loop's share weighting is exact only for means over examples.
    """
    return _SHARE.get() or Share()


def count_normaliser(local: int, device: torch.device) -> float | None:
    """The normaliser of a loss that divides by a batch-level count (matched windows, target tokens):
    None in one process (the loss keeps its own mean, bit for bit); under several, the count over the
    whole global batch corrected for the loop's share weighting (`Share.denominator`), so that the
    ranks' sums divided by it add up to the one-process mean (docs/distributed.md).

    Every rank takes part in the all-reduce, a stand-in (weight 0) with a count of 0; the stand-in
    then keeps its own mean (None), which the loop weights 0.
    """
    share = current_share()
    if not share.job.enabled:
        return None
    count = torch.tensor([float(local) if share.weight > 0 else 0.0], dtype=torch.float64, device=device)
    denominator = share.denominator(float(all_reduce_sum(count, share.job)[0]))
    return denominator if denominator > 0 else None


@contextmanager
def sharing(share: Share) -> Iterator[Share]:
    """Make `share` the `current_share()` for the duration (the Stepper, around `train_step`)."""
    token = _SHARE.set(share)
    try:
        yield share
    finally:
        _SHARE.reset(token)


class StepTask(Protocol):
    def train_step(self, model: torch.nn.Module, batch: Any, device: torch.device) -> StepOutput: ...


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for `--amp` on `device` (None: full precision).

    auto is bf16 on a CUDA device that supports it, fp16 on an older one, off on CPU. The partial OT
    and its cost always run in float32 inside autocast (readcli/alignment), whatever this says.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16_ok else torch.float16


def autocast(device: torch.device, amp: str) -> AbstractContextManager[Any]:
    dtype = amp_dtype(device, amp)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@dataclass
class Stepper:
    """One optimisation step: forward under autocast, a rank-consistent finite check, backward, clip."""

    model: torch.nn.Module  # what the task calls: the DDP wrapper under several processes
    task: StepTask
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    amp: str
    grad_clip: float
    device: torch.device
    job: Dist

    def __post_init__(self) -> None:
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none
        fp16 = amp_dtype(self.device, self.amp) == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)

    def step(self, batch: Any, weight: float, epoch: int, step: int) -> dict[str, float]:
        with autocast(self.device, self.amp), sharing(Share(weight, self.job)):
            output = self.task.train_step(self.model, batch, self.device)
        parts = global_parts(output, weight, self.job, epoch, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss = output.total if weight == 1.0 else output.total * weight
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return parts


def global_parts(output: StepOutput, weight: float, job: Dist, epoch: int, step: int) -> dict[str, float]:
    """The step's loss and its parts over the whole global batch; stops every rank alike if the total
    is non-finite on any rank (one all-reduce of the values and of non-finite flags)."""
    names = ["loss", *output.parts]
    values = torch.stack(
        [output.total.detach().float().reshape(())]
        + [v.detach().float().reshape(()) for v in output.parts.values()]
    )  # (P,)
    bad = (~torch.isfinite(values)).float()  # (P,)
    if job.enabled:
        share = torch.where(bad > 0, 0.0, values) * (weight / job.world)  # (P,) this rank's share
        summed = all_reduce_sum(torch.cat([share, bad]), job)  # (2P,)
        values, bad = summed[: len(names)], summed[len(names) :]
    flags = bad.tolist()
    if flags[0] > 0:
        culprit = ", ".join(n for n, f in zip(names[1:], flags[1:], strict=True) if f > 0) or "total"
        raise TrainingError(
            f"loss became non-finite at epoch {epoch + 1}, step {step + 1} (in {culprit}); training "
            "stopped, the last good checkpoint is kept: lower --lr or check the input features for outliers"
        )
    return dict(zip(names, values.tolist(), strict=True))
