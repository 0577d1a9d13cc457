"""readcli.cpu_share measures the CPU other processes use; the demo's runner lends its spare worker
only while that is at least half a core, and the results never depend on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from test_demo_protocol import FakeTask

from readcli.cpu_share import PROC, OtherCpu, children_of
from readcli.demo.execute import run_protocol


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_other_cores_are_the_machines_work_minus_the_own_processes_over_a_whole_window() -> None:
    clock, busy, own = _Clock(), {"ticks": 1000}, {1: 50, 2: 70}
    meter = OtherCpu(
        2.0, clock=clock, busy_ticks=lambda: busy["ticks"], process_ticks=own.get, ticks_per_second=100
    )
    assert meter.sample([1, 2]) is None  # the first call opens the window
    clock.now, busy["ticks"] = 1.0, 1100
    assert meter.sample([1, 2]) is None  # shorter than the window
    clock.now, busy["ticks"], own[1], own[2] = 2.5, 1250, 100, 120  # 250 ticks, 100 of them ours
    assert meter.sample([1, 2]) == pytest.approx(150 / 100 / 2.5)  # 0.6 cores used by others
    clock.now, busy["ticks"], own[3] = 5.0, 1300, 900  # a new own process: its past is no window's
    assert meter.sample([1, 2, 3]) is None
    clock.now, busy["ticks"], own[3] = 7.0, 1500, 1100  # only our new process worked
    assert meter.sample([1, 2, 3]) == pytest.approx(0.0)


def test_without_proc_nothing_is_reported() -> None:
    meter = OtherCpu(0.0, busy_ticks=lambda: None, process_ticks=lambda pid: None)
    assert meter.sample([1]) is None and meter.sample([1]) is None


@pytest.mark.skipif(not (PROC / "stat").exists(), reason="needs Linux's /proc")
def test_the_proc_readers_give_a_non_negative_figure() -> None:
    meter = OtherCpu(0.05)
    assert meter.sample([os.getpid()]) is None
    time.sleep(0.1)
    others = meter.sample([os.getpid()])
    assert others is not None and others >= 0.0


class _Others(OtherCpu):
    def __init__(self, cores: float) -> None:
        super().__init__(0.0)
        self.cores = cores

    def sample(self, own: Iterable[int]) -> float | None:
        return self.cores


def _scores(outcome) -> dict:  # type: ignore[no-untyped-def]
    return {job: s.per_example["score"].tolist() for job, s in {**outcome.dev, **outcome.test}.items()}


def test_the_spare_worker_runs_only_while_others_are_busy_and_changes_no_result(tmp_path: Path) -> None:
    grids = {"fake": {"read-pvla": (0.001, 0.01), "lora": (0.001, 0.01)}}
    alone = run_protocol({"fake": FakeTask()}, grids, [0, 1], tmp_path, jobs=1)
    busy = run_protocol(
        {"fake": FakeTask()}, grids, [0, 1], tmp_path, jobs=2, spare=True, other_cpu=_Others(1.0)
    )
    quiet = run_protocol(
        {"fake": FakeTask()}, grids, [0, 1], tmp_path, jobs=2, spare=True, other_cpu=_Others(0.2)
    )
    assert busy.spare_runs > 0 and quiet.spare_runs == 0
    assert _scores(busy) == _scores(alone) == _scores(quiet) and busy.chosen == alone.chosen
    assert np.isfinite([v for row in _scores(busy).values() for v in row]).all()


@pytest.mark.skipif(not (PROC / "stat").exists(), reason="needs Linux's /proc")
def test_children_of_finds_the_processes_this_one_started() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in children_of(os.getpid())
        assert os.getpid() not in children_of(os.getpid())
    finally:
        child.kill()
        child.wait()
