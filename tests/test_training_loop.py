"""The generic loop: deterministic, resumable after an interruption, stops cleanly on a non-finite loss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from readcli.errors import CheckpointError, InvalidValueError, TrainingError
from readcli.training.loop import EvalOutput, StepOutput, TrainSettings, batches_of, train
from readcli.training.train_checkpoint import latest_checkpoint


class ToyTask:
    """Noisy linear regression with dropout, so both data order and RNG state matter."""

    def __init__(
        self, n: int = 40, fail_at: tuple[int, int] | None = None, nan_at: int | None = None
    ) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=gen)  # (N, 8)
        self.y = self.x @ torch.randn(8, 1, generator=gen) + 0.1 * torch.randn(n, 1, generator=gen)
        self.fail_at = fail_at  # (epoch index, step index) where a simulated kill happens
        self.nan_at = nan_at
        self.epoch = -1
        self.steps_seen = 0

    def num_train_batches(self, batch_size: int) -> int:
        return -(-len(self.x) // batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        self.epoch += 1
        order = torch.randperm(len(self.x), generator=generator).tolist()
        for step, idx in enumerate(batches_of(order, batch_size)):
            if self.fail_at == (self.epoch, step):
                raise KeyboardInterrupt("simulated kill")
            yield torch.tensor(idx)

    def train_step(self, model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> StepOutput:
        self.steps_seen += 1
        pred = model(self.x[batch])
        mse = torch.nn.functional.mse_loss(pred, self.y[batch])
        if self.nan_at is not None and self.steps_seen == self.nan_at:
            mse = mse * float("nan")
        return StepOutput(total=mse, parts={"loss_mse": mse})

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        mse = torch.nn.functional.mse_loss(model(self.x), self.y)
        return EvalOutput(metrics={"mse": float(mse)})


def make_model() -> torch.nn.Module:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    model[0].requires_grad_(False)  # a frozen "backbone" part
    return model


SETTINGS = TrainSettings(epochs=3, lr=1e-2, batch_size=8, seed=5, select_metric="mse", select_mode="min")


def test_training_lowers_loss_and_only_trainable_tensors_move(tmp_path: Path) -> None:
    model = make_model()
    frozen_before = model[0].weight.clone()
    result = train(model, ToyTask(), SETTINGS, tmp_path)
    history = [h["mse"] for h in result.state.history]
    assert history[-1] < history[0]
    assert torch.equal(model[0].weight, frozen_before)
    assert result.state.best_epoch is not None
    assert result.best_metrics["mse"] == min(history)


def test_resume_after_interruption_gives_identical_result(tmp_path: Path) -> None:
    reference = make_model()
    ref_result = train(reference, ToyTask(), SETTINGS, tmp_path / "a")

    interrupted = make_model()
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, ToyTask(fail_at=(1, 2)), SETTINGS, tmp_path / "b")
    assert latest_checkpoint(tmp_path / "b") is not None  # epoch 1 was saved
    resumed = make_model()  # a fresh process: the model starts again from its source weights
    task = ToyTask()
    task.epoch = 0  # the toy's epoch counter only drives the simulated kill
    result = train(resumed, task, SETTINGS, tmp_path / "b", resume=True)
    assert result.resumed_from_epoch == 1
    assert [h["mse"] for h in result.state.history] == [h["mse"] for h in ref_result.state.history]
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_non_finite_loss_stops_with_step_and_part_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"epoch 2, step 3 \(in loss_mse\)"):
        train(make_model(), ToyTask(nan_at=5 + 3), SETTINGS, tmp_path)
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.name == "epoch-0001"


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    train(make_model(), ToyTask(), TrainSettings(epochs=1, batch_size=8, select_metric="mse"), tmp_path)
    other = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))
    settings = TrainSettings(epochs=2, batch_size=8, select_metric="mse")
    with pytest.raises(CheckpointError, match="does not match this model's trainable tensors"):
        train(other, ToyTask(), settings, tmp_path, resume=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"lr": 0.0}, "--lr 0.0"),
        ({"lr": float("nan")}, "--lr nan"),
        ({"batch_size": 0}, "--batch-size 0"),
        ({"amp": "fp8"}, "--amp 'fp8'"),
    ],
)
def test_settings_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        TrainSettings(**kwargs)  # type: ignore[arg-type]
