"""bench/gpu_check.sh where no GPU is needed: no CUDA (one line, exit 0 at once) and --dry-run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
STEPS = ("inputs", "cuda-tests", "ot-bench", "train", "amp", "ground", "finetune")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # CUDA_VISIBLE_DEVICES="" hides any GPU from torch, so this is the no-CUDA mode on every machine
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(GPU_CHECK_WORK=str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device"), result.stdout
    assert result.stderr == ""
    assert not (tmp_path / "work").exists()  # nothing built, nothing run
    assert time.monotonic() - start < 60  # at most one torch import


def test_dry_run_prints_every_step_command_and_runs_none(tmp_path: Path) -> None:
    result = _run("--dry-run", GPU_CHECK_WORK=str(tmp_path / "work"), READCLI_SHARED_DATA="/data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(STEPS)
    assert "--device cuda" in result.stdout and "--gpu-batch 256" in result.stdout
    assert "/data/videos/book.mp4" in result.stdout and "--epochs 2" in result.stdout
    assert not (tmp_path / "work").exists()


def test_unknown_argument_is_one_line_exit_2() -> None:
    result = _run("--fast")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown argument '--fast' (use --dry-run or --help)"
