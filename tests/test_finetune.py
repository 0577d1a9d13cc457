"""`readcli finetune --task tlg` end to end on real QVHighlights rows with small synthetic features."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reliability_inputs
import torch
from typer.testing import CliRunner

from readcli.adapters import load_bundle
from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, load_backbone, save_backbone
from readcli.cli import app
from readcli.pipelines._grounding_run import prepare_grounding_run
from readcli.pipelines.finetune import run
from readcli.pipelines.finetune_request import GroundingFinetuneRequest
from readcli.training.loop import TrainSettings

runner = CliRunner()


@pytest.fixture(scope="module")
def grounding_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """12 train and 6 val real QVHighlights rows; features: 16-d video, 12-d text (tiny model widths)."""
    return reliability_inputs.grounding_dir(tmp_path_factory.mktemp("qvh"), shared_data, train=12, val=6)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "tiny"
    save_backbone(build_backbone(tiny_moment_detr_config()), path)
    return path


def _request(data: Path, out: Path, backbone: Path, **changes: Any) -> GroundingFinetuneRequest:
    settings = TrainSettings(epochs=2, batch_size=4, lr=1e-3, seed=3)
    base = GroundingFinetuneRequest(data=str(data), out=str(out), backbone=str(backbone), train=settings)
    return replace(base, **changes)


def test_finetune_read_pvla_writes_run_files_and_a_loadable_bundle(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = run(_request(grounding_dir, out, tiny_backbone))
    assert result.best_epoch in (1, 2)
    assert "MR-full-mAP" in result.best_metrics
    assert 0 < result.trainable < result.total
    for name in (
        "run.json",
        "metrics.json",
        "train_log.jsonl",
        "best_val_preds.jsonl",
        "best/adapter_config.json",
    ):
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["event"] == "step"]
    assert len(steps) == 2 * 3 and all("loss_pvla" in r and r["loss_pvla"] > 0 for r in steps)
    preds = [json.loads(line) for line in (out / "best_val_preds.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and all(len(p["pred_relevant_windows"]) > 0 for p in preds)
    # the bundle loads into a fresh copy of the frozen backbone and reproduces the same predictions
    fresh = load_backbone(str(tiny_backbone))
    loaded = load_bundle(fresh, out / "best")
    assert loaded.config.extra["feature_spec"]["video_streams"][0]["name"] == "clip"
    grounding = prepare_grounding_run(_request(grounding_dir, out, tiny_backbone), None)
    assert grounding.task.predict(fresh.eval(), grounding.task.val, torch.device("cpu")) == preds


def test_no_pvla_logs_no_alignment_loss(grounding_dir: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    request = _request(grounding_dir, tmp_path / "run", tiny_backbone, pvla=False, method="lora")
    run(request)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert not any("loss_pvla" in r for r in log)


def test_resume_continues_to_the_same_result(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    reference = run(_request(grounding_dir, tmp_path / "a", tiny_backbone))
    first = _request(grounding_dir, tmp_path / "b", tiny_backbone)
    run(replace(first, train=TrainSettings(epochs=1, batch_size=4, lr=1e-3, seed=3)))
    result = CliRunner().invoke(app, ["finetune", "--resume", str(tmp_path / "b"), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["history"] == reference.history


def test_cli_finetune_runs_and_refuses_an_existing_run(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    args = ["finetune", "--data", str(grounding_dir), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--backbone", str(tiny_backbone), "--batch-size", "6", "--method", "adapter"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "MR-full-mAP" in result.output and "trainable" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "already holds a run" in again.stderr and "Traceback" not in again.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "magic"], "unknown method 'magic'"),
        (["--mass", "1.5"], "mass 1.5 is out of range"),
        (["--lr", "-1"], "--lr -1.0 is invalid"),
        (["--task", "xyz"], "--task 'xyz' is not available"),
    ],
)
def test_cli_finetune_bad_values_are_one_line(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = [
        "finetune",
        "--data",
        str(grounding_dir),
        "--out",
        str(tmp_path / "r"),
        "--backbone",
        str(tiny_backbone),
    ]
    result = runner.invoke(app, args + extra)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "run.json").exists()


def test_features_of_the_wrong_width_are_refused(grounding_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    wide = tmp_path / "wide"
    save_backbone(build_backbone(tiny_moment_detr_config(v_feat_dim=34)), wide)
    result = runner.invoke(app, ["finetune", "--data", str(grounding_dir), "--out", str(tmp_path / "r"),
                                 "--backbone", str(wide)])  # fmt: skip
    assert result.exit_code == 1
    assert "expected 34, found 18" in result.stderr


# --- a fresh run that fails before its first checkpoint leaves nothing it created ---


def _damaged_data(source: Path, root: Path, array: np.ndarray) -> Path:
    data = root / "data"
    shutil.copytree(source, data)
    first = sorted((data / "video_features" / "clip").glob("*.npz"))[0]
    np.savez(first, features=array)
    return data


def _fresh_args(data: Path, backbone: Path, out: Path) -> list[str]:
    return ["finetune", "--data", str(data), "--backbone", str(backbone), "--out", str(out), "--epochs", "1",
            "--batch-size", "4", "--device", "cpu"]  # fmt: skip


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return str(line)


@pytest.mark.parametrize(
    "array, needle",
    [
        (np.full((75, 16), np.nan, dtype=np.float32), "NaN or inf"),
        (np.array([["a"] * 16] * 75), ".npz"),  # the file is named; the wording is the reader's
    ],
    ids=["nan-features", "string-features"],
)
def test_a_fresh_run_refused_for_bad_features_leaves_no_out(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path, array: np.ndarray, needle: str
) -> None:
    data = _damaged_data(grounding_dir, tmp_path, array)
    out = tmp_path / "new" / "run"  # its parent is created too, and removed again
    line = _one_error_line(runner.invoke(app, _fresh_args(data, tiny_backbone, out)))
    assert needle in line
    assert not (tmp_path / "new").exists()


def test_a_fresh_run_into_an_existing_folder_removes_only_its_own_files(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    data = _damaged_data(grounding_dir, tmp_path, np.full((75, 16), np.nan, dtype=np.float32))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    _one_error_line(runner.invoke(app, _fresh_args(data, tiny_backbone, out)))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_all_nan_backbone_is_named_not_blamed_on_the_learning_rate(
    grounding_dir: Path, tmp_path: Path
) -> None:
    model = build_backbone(tiny_moment_detr_config())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    save_backbone(model, tmp_path / "nan-backbone")
    out = tmp_path / "run"
    line = _one_error_line(runner.invoke(app, _fresh_args(grounding_dir, tmp_path / "nan-backbone", out)))
    assert "nan-backbone holds NaN or inf weights" in line and "--lr" not in line
    assert not out.exists()


def test_a_nan_loss_at_the_first_step_is_not_blamed_on_the_learning_rate(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from readcli.training import grounding_task
    from readcli.training.loop import StepOutput

    original = grounding_task.GroundingTask.train_step

    def poisoned(self: Any, model: Any, batch: Any, device: Any) -> StepOutput:
        output = original(self, model, batch, device)
        return StepOutput(total=output.total * float("nan"), parts=output.parts)

    monkeypatch.setattr(grounding_task.GroundingTask, "train_step", poisoned)
    out = tmp_path / "run"
    line = _one_error_line(runner.invoke(app, _fresh_args(grounding_dir, tiny_backbone, out)))
    assert "first step, before any weight update" in line and "learning rate is not the cause" in line
    assert not out.exists()


def test_a_fresh_run_refuses_an_out_holding_a_trained_bundle(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    (out / "best").mkdir(parents=True)
    (out / "best" / "adapter_config.json").write_text("{}")
    line = _one_error_line(runner.invoke(app, _fresh_args(grounding_dir, tiny_backbone, out)))
    assert "already holds best" in line
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["best", "best/adapter_config.json"]


def test_a_full_disk_at_the_first_checkpoint_leaves_the_users_empty_folder_as_it_was(
    grounding_dir: Path, tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import readcli.training.train_checkpoint as checkpoint
    from readcli.errors import OutputFileError

    def full(path: Any, data: bytes) -> None:
        raise OutputFileError(f"cannot write {path}: no space left on the device")

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)  # an empty checkpoints/ is not a run: a new run may use it
    line = _one_error_line(runner.invoke(app, _fresh_args(grounding_dir, tiny_backbone, out)))
    assert "no space left" in line
    assert [str(p.relative_to(out)) for p in out.rglob("*")] == ["checkpoints"]  # staging removed too
