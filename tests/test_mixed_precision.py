"""Mixed precision in training: bf16 autocast for the backbone, the PVLA optimal transport in float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from readcli.adapters import method_settings
from readcli.adapters.inject import inject
from readcli.alignment import PVLASettings, pvla_loss
from readcli.alignment import loss as loss_module
from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone
from readcli.data.collate import collate_moments
from readcli.data.moment_dataset import MomentItem
from readcli.training.grounding_loss import GroundingCriterion, GroundingLossWeights, GroundingTargets
from readcli.training.loop import EvalOutput, StepOutput, TrainSettings, batches_of, train
from readcli.training.step import amp_dtype


def test_amp_settings_pick_the_autocast_dtype() -> None:
    cpu = torch.device("cpu")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "off") is None
    assert amp_dtype(cpu, "bf16") == torch.bfloat16
    assert amp_dtype(cpu, "fp16") == torch.float16


def _moment_batch(seed: int = 0) -> Any:
    """Two synthetic Moment-DETR items (18-d video with TEF, 12-d text), one window each."""
    rng = np.random.default_rng(seed)
    items = [
        MomentItem(
            qid=i,
            vid=f"v{i}",
            query=f"q{i}",
            duration=2.0 * clips,
            domain=None,
            video=rng.normal(size=(clips, 18)).astype(np.float32),
            text=rng.normal(size=(words, 12)).astype(np.float32),
            span_labels=np.array([[0.5, 0.3]], dtype=np.float32),
            saliency_pos=np.array([1]),
            saliency_neg=np.array([clips - 1]),
            saliency_valid=True,
            saliency=np.zeros(clips, dtype=np.float32),
            has_labels=True,
        )  # fmt: skip
        for i, (clips, words) in enumerate([(6, 4), (5, 3)])
    ]
    return collate_moments(items)


def _float32_pvla(states: Any) -> torch.Tensor:
    """PVLA of the same states cast to float32 explicitly, outside any autocast."""
    video, text = states.video.float(), states.text.float()
    return pvla_loss(video, text, states.video_mask, states.text_mask, settings=PVLASettings())


def test_pvla_inside_bf16_autocast_is_the_float32_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build_backbone(tiny_moment_detr_config(dropout=0.0, input_dropout=0.0))
    inject(model, method_settings("read"))
    model.collect_block_states = True  # type: ignore[assignment]
    batch = _moment_batch()
    seen: list[torch.dtype] = []
    solve = loss_module.solve_partial_ot

    def spy(cost: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(cost.dtype)
        return solve(cost, *args, **kwargs)

    monkeypatch.setattr(loss_module, "solve_partial_ot", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(**batch.model_inputs())
        states = outputs["block_states"]
        under_autocast = pvla_loss(states, settings=PVLASettings())
    assert states.video.dtype == torch.bfloat16  # the backbone did run in bf16
    assert under_autocast.dtype == torch.float32 and seen == [torch.float32]
    # the same bf16 states, solved with autocast off after an explicit float32 cast: identical
    reference = _float32_pvla(states)
    torch.testing.assert_close(under_autocast, reference, atol=0, rtol=0)
    criterion = GroundingCriterion(GroundingLossWeights())
    targets = GroundingTargets(batch.span_labels, batch.saliency_pos_labels, batch.saliency_neg_labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = criterion(outputs, targets).total + under_autocast
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


class _Regression:
    """y = x w: a task small enough to train under every --amp setting in milliseconds."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 8, generator=g)  # (N, 8)
        self.y = self.x @ torch.randn(8, 1, generator=g)  # (N, 1)

    def num_train_batches(self, batch_size: int) -> int:
        return -(-len(self.x) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Any:
        for idx in batches_of(torch.randperm(len(self.x), generator=generator).tolist(), batch_size):
            yield torch.tensor(idx)

    def train_step(self, model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> StepOutput:
        mse = torch.nn.functional.mse_loss(model(self.x[batch]).float(), self.y[batch])
        return StepOutput(total=mse, parts={"loss_mse": mse})

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        return EvalOutput(metrics={"mse": float(torch.nn.functional.mse_loss(model(self.x).float(), self.y))})


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_under_autocast_converges_with_float32_weights(amp: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    settings = TrainSettings(
        epochs=4, lr=5e-2, batch_size=8, grad_clip=0, amp=amp,  # type: ignore[arg-type]
        select_metric="mse", select_mode="min",
    )  # fmt: skip
    history = [h["mse"] for h in train(model, _Regression(), settings, tmp_path).state.history]
    assert history[-1] < 0.5 * history[0]
    assert model.weight.dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_step_on_cuda_keeps_the_transport_in_float32() -> None:
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = build_backbone(tiny_moment_detr_config(dropout=0.0, input_dropout=0.0)).to(device)
    inject(model, method_settings("read"))
    model.collect_block_states = True  # type: ignore[assignment]
    batch = _moment_batch().to(device)
    with torch.autocast("cuda", dtype=amp_dtype(device, "auto")):
        states = model(**batch.model_inputs())["block_states"]
        loss = pvla_loss(states, settings=PVLASettings())
    assert loss.dtype == torch.float32
    reference = _float32_pvla(states)
    torch.testing.assert_close(loss, reference)
