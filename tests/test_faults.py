"""Faults a real machine throws at readcli (docs/reliability.md): kills, a full disk, concurrent runs, NaN.

Kills are real: a child process (tests/fault_child.py) runs readcli's own code, pauses at a chosen
point (mid-epoch, or halfway through writing a file), and gets SIGKILL there. Every run is tiny (a
12-row grounding set, a tiny Moment-DETR, a tiny CLIP) and on the CPU.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from reliability_inputs import bad_videos, grounding_dir, tiny_backbone
from typer.testing import CliRunner

import readcli.fileio as fileio
from readcli.adapters.bundle import load_bundle, save_bundle
from readcli.adapters.inject import adapter_parameters, inject
from readcli.adapters.settings import method_settings
from readcli.cli import app
from readcli.features.metadata import array_sha256
from readcli.features.store import load_feature_array
from readcli.training.train_checkpoint import latest_checkpoint

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the child names files via /proc")
runner = CliRunner()
TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "fault_child.py"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    return {
        "data": grounding_dir(root / "data", shared_data),
        "backbone": tiny_backbone(root / "backbone"),
        "root": root,
    }


def _finetune_args(inputs: dict[str, Path], out: Path, epochs: int = 2) -> list[str]:
    return ["finetune", "--data", str(inputs["data"]), "--backbone", str(inputs["backbone"]), "--out",
            str(out), "--epochs", str(epochs), "--batch-size", "4", "--lr", "1e-3", "--seed", "3",
            "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def reference(inputs: dict[str, Path]) -> dict[str, Any]:
    """metrics.json of an uninterrupted 2-epoch run, in this process."""
    out = inputs["root"] / "reference"
    result = runner.invoke(app, _finetune_args(inputs, out))
    assert result.exit_code == 0, result.output
    return dict(json.loads((out / "metrics.json").read_text()))


class Child:
    """A fault_child.py process; `wait_ready` blocks until it pauses at its point."""

    def __init__(self, ready: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.ready = ready
        path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, **(env or {}), "PYTHONPATH": path}
        command = [sys.executable, str(CHILD), str(ready), str(torch.get_num_threads()), *args]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"child ended ({self.proc.returncode}) before its pause: {err.decode()}")
            assert time.monotonic() < deadline, "child never reached its pause"
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL


def _metrics(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "metrics.json").read_text()))


# --- kills ---


def test_sigkill_mid_epoch_or_mid_checkpoint_then_resume_gives_the_uninterrupted_metrics(
    inputs: dict[str, Path], reference: dict[str, Any], tmp_path: Path
) -> None:
    # two runs killed at once: one after step 5 (epoch 2 of 3 steps each), one halfway through
    # writing epoch 2's checkpoint; both children start together to share their start-up time
    mid_epoch = Child(tmp_path / "ready-a", "step", "5", "--", *_finetune_args(inputs, tmp_path / "a"))
    mid_save = Child(
        tmp_path / "ready-b", "write", ".epoch-0002.partial", "--", *_finetune_args(inputs, tmp_path / "b")
    )
    for child in (mid_epoch, mid_save):
        child.wait_ready()
        child.kill()
    for run in (tmp_path / "a", tmp_path / "b"):
        checkpoint = latest_checkpoint(run)
        assert checkpoint is not None and checkpoint.name == "epoch-0001"  # the previous one, whole
        assert not (run / "metrics.json").exists()
        result = runner.invoke(app, ["finetune", "--resume", str(run)])
        assert result.exit_code == 0, result.output
        metrics = _metrics(run)
        assert metrics["history"] == reference["history"] and metrics["best"] == reference["best"]
    # the killed checkpoint's staging folder is hidden and was not taken for a checkpoint
    assert latest_checkpoint(tmp_path / "b") is not None


@pytest.fixture(scope="module")
def old_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_adapters_hosts import tiny_grounder

    folder = tmp_path_factory.mktemp("bundle") / "best"
    model = tiny_grounder()
    inject(model, method_settings("read", bottleneck=4))
    with torch.no_grad():
        for parameter in adapter_parameters(model).values():
            parameter.fill_(0.25)
    save_bundle(model, folder, backbone_name="tiny-host", task="test")
    return folder


def _bundle_value(folder: Path) -> float:
    from test_adapters_hosts import tiny_grounder

    model = tiny_grounder()
    load_bundle(model, folder)
    values = {float(v) for p in adapter_parameters(model).values() for v in p.detach().flatten()}
    assert len(values) == 1, values  # one whole bundle, never a mix of two
    return values.pop()


def test_sigkill_during_a_bundle_save_leaves_a_whole_bundle_that_loads(
    old_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    children = {}
    for point in ("pending", "config", "commit"):
        folder = tmp_path / point
        shutil.copytree(old_bundle, folder)
        children[point] = Child(tmp_path / f"ready-{point}", "bundle", point, str(folder), "0.75")
    for child in children.values():
        child.wait_ready()
        child.kill()
    # before the config commits, the old bundle; after, the new one: whole either way
    assert _bundle_value(tmp_path / "pending") == 0.25
    assert _bundle_value(tmp_path / "config") == 0.25
    assert _bundle_value(tmp_path / "commit") == 0.75


# --- a full disk ---


class _FullDisk:
    """A file whose writes fail as a full disk does."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@pytest.fixture
def full_disk_under(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Writes of files whose path holds one of the listed patterns fail with ENOSPC."""
    patterns: list[str] = []
    original = fileio._open_temp

    def open_temp(fd: int) -> Any:
        handle = original(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        return _FullDisk(handle) if any(p in path for p in patterns) else handle

    monkeypatch.setattr(fileio, "_open_temp", open_temp)
    yield patterns


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_files(
    inputs: dict[str, Path], reference: dict[str, Any], tmp_path: Path, full_disk_under: list[str]
) -> None:
    run = tmp_path / "run"
    first = runner.invoke(app, _finetune_args(inputs, run, epochs=1))
    assert first.exit_code == 0, first.output
    kept = {k: v for k, v in _files(run).items() if k.startswith("checkpoints/") or k.startswith("best/")}
    full_disk_under.append(".epoch-0002.partial")
    result = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", "2"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    # the first file of the new checkpoint (trainable.safetensors) is the one that meets the full disk
    assert "trainable.safetensors" in line and "no space left on the device" in line
    assert "is unchanged" in line
    assert "Traceback" not in result.output
    now = _files(run)
    assert all(now.get(name) == data for name, data in kept.items() if name.startswith("checkpoints/"))
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and checkpoint.name == "epoch-0001"
    assert not [p for p in run.rglob("*.tmp")]
    full_disk_under.clear()  # space again: the run continues from epoch 1 to the same result
    again = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", "2"])
    assert again.exit_code == 0, again.output
    assert _metrics(run)["history"] == reference["history"]


def test_full_disk_while_writing_a_plot_keeps_the_previous_plot(
    tmp_path: Path, full_disk_under: list[str]
) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "v.npz", features=rng.standard_normal((8, 16)).astype(np.float32))
    np.savez(tmp_path / "t.npz", last_hidden_state=rng.standard_normal((4, 16)).astype(np.float32))
    png = tmp_path / "plots" / "plan.png"
    args = ["inspect-ot", "--video-features", str(tmp_path / "v.npz"), "--text-features",
            str(tmp_path / "t.npz"), "--png", str(png)]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    before = png.read_bytes()
    full_disk_under.append("plan.png")
    result = runner.invoke(app, [*args, "--tau", "0.2"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert (
        line == f"error: cannot write {png}: no space left on the device: free some space and run again "
        "(the previous plan.png, if any, is unchanged)"
    )
    assert png.read_bytes() == before and [p.name for p in png.parent.iterdir()] == ["plan.png"]


# --- two extract runs on one folder ---


def test_two_extract_processes_on_one_folder_leave_only_whole_files(
    tiny_clip: Path, shared_data: Path, tmp_path: Path
) -> None:
    videos = [bad_videos(tmp_path / "made", shared_data / "videos" / "book.mp4")["one_frame"],
              shared_data / "videos" / "toby2.mp4", shared_data / "videos" / "shiba.mp4"]  # fmt: skip
    out = tmp_path / "out"
    config = tiny_clip.parent / f"{TINY_CLIP}.json"
    args = ["extract", *map(str, videos), "--out", str(out), "--clip-model", TINY_CLIP, "--clip-weights",
            str(tiny_clip), "--device", "cpu"]  # fmt: skip
    env = {"READCLI_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    children = [
        Child(tmp_path / f"never-{i}", "extract", str(config), "--", *args, env=env) for i in range(2)
    ]
    for child in children:
        _, err = child.proc.communicate(timeout=300)
        assert child.proc.returncode == 0, err.decode()
    names = ["one_frame", "toby2", "shiba"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}{e}" for n in names for e in (".json", ".npz")
    )
    for name in names:
        features = load_feature_array(out / f"{name}.npz", "features", expected_dim=512)
        assert json.loads((out / f"{name}.json").read_text())["features_sha256"] == array_sha256(features)


# --- a loss that becomes NaN ---


def test_a_nan_loss_stops_naming_step_and_part_and_keeps_the_last_good_checkpoint(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from readcli.training import grounding_task
    from readcli.training.loop import StepOutput

    original = grounding_task.GroundingTask.train_step
    steps = [0]

    def poisoned(self: Any, model: Any, batch: Any, device: Any) -> StepOutput:
        output = original(self, model, batch, device)
        steps[0] += 1
        if steps[0] == 5:  # epoch 2, step 2 (3 steps an epoch)
            name = sorted(k for k in output.parts if k.startswith("loss_"))[0]
            parts = {**output.parts, name: output.parts[name] * float("nan")}
            return StepOutput(total=output.total * float("nan"), parts=parts)
        return output

    monkeypatch.setattr(grounding_task.GroundingTask, "train_step", poisoned)
    run = tmp_path / "run"
    result = runner.invoke(app, _finetune_args(inputs, run))
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "epoch 2, step 2" in line and "(in loss_" in line and "last good checkpoint is kept" in line
    assert "Traceback" not in result.output
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and checkpoint.name == "epoch-0001"
    monkeypatch.undo()
    resumed = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", "1"])
    assert resumed.exit_code == 0, resumed.output  # the kept checkpoint loads


# --- an extract whose every input fails creates no --out ---


def test_extract_of_a_truncated_video_is_refused_without_creating_out(
    tiny_clip: Path, shared_data: Path, tmp_path: Path
) -> None:
    videos = bad_videos(tmp_path / "made", shared_data / "videos" / "book.mp4")
    out = tmp_path / "new" / "feats"
    args = ["extract", str(videos["truncated"]), "--out", str(out), "--clip-model", TINY_CLIP,
            "--clip-weights", str(tiny_clip), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args, env={"READCLI_CACHE": str(tmp_path / "cache")})
    assert result.exit_code == 1, result.output
    assert "truncated.mp4" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()
