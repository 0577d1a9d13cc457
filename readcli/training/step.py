"""One optimisation step, in one process or as one rank of several: autocast, a rank-consistent
finite check, backward (DDP averages the gradients), clipping, the optimiser step.

Kept apart from the loop (readcli/training/loop.py) so that benchmarks time exactly the loop's step.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from readcli.errors import TrainingError
from readcli.training.distributed import Dist, all_reduce_sum


@dataclass
class StepOutput:
    """One training step's loss: the total to differentiate and its named parts (for logs and checks)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


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
        with autocast(self.device, self.amp):
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
