"""The demo protocol: the learning rate is chosen on dev alone, the test split is read only after the
choice (a fake task that records calls, and a real world whose test file is absent), the table maths,
and the quick run end to end."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readcli.cli.app import app
from readcli.demo.contract import RunScores, SourceReport
from readcli.demo.execute import run_protocol
from readcli.demo.protocol import Job, choose_lr
from readcli.demo.report import text_table, world_table
from readcli.errors import InputFileError, InvalidValueError

runner = CliRunner()


class FakeTask:
    """Dev scores favour lr 0.01 for every method; test scores would favour 0.001 (a leak would show)."""

    name = "fake"
    metrics = ("score", "other")
    worlds = ("w1", "w2")

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, float, int]] = []

    def methods(self) -> tuple[str, ...]:
        return ("read-pvla", "lora")

    def prepare(self, cache: Path) -> tuple[SourceReport, ...]:
        return (SourceReport("fake", cache, True, 0.0, {"score": 1.0}),)

    def run(self, world: str, method: str, lr: float, seed: int, split: str) -> RunScores:
        self.calls.append((split, world, method, lr, seed))
        good = lr == (0.01 if split == "dev" else 0.001)
        base = 10.0 + (5.0 if good else 0.0) + (1.0 if method == "lora" else 0.0) + seed
        values = base + np.arange(20) % 3  # (Q,)
        return RunScores({"score": values, "other": values / 2}, 10, 100, 0.0)


def test_test_split_is_read_only_after_the_cell_has_chosen_on_dev(tmp_path: Path) -> None:
    task = FakeTask()
    grids = {"fake": {"read-pvla": (0.001, 0.01), "lora": (0.001, 0.01)}}
    outcome = run_protocol({"fake": task}, grids, [0, 1, 2], tmp_path, jobs=1)
    assert set(outcome.chosen.values()) == {0.01}  # dev's favourite, though test would favour 0.001
    for cell in outcome.chosen:
        calls = [i for i, c in enumerate(task.calls) if (c[1], c[2]) == cell[1:]]
        last_dev = max(i for i in calls if task.calls[i][0] == "dev")
        first_test = min(i for i in calls if task.calls[i][0] == "test")
        assert last_dev < first_test
    tests = [c for c in task.calls if c[0] == "test"]
    assert len(tests) == 2 * 2 * 3 and {c[3] for c in tests} == {0.01}
    table = world_table(task, "w1", outcome, [0, 1, 2], resamples=500)
    lora = next(r for r in table.rows if r.method == "lora")
    assert lora.comparison is not None and lora.comparison.mean_diff == pytest.approx(1.0)
    assert lora.comparison.verdict == "better" and lora.mean["score"] == pytest.approx(
        12.95
    )  # 10 + 1 + mean seed 1 + 0.95
    assert all(len(line) <= 80 for line in text_table(table).splitlines())


def test_choose_lr_refuses_test_scores_and_breaks_ties_towards_the_smaller_rate() -> None:
    scores = RunScores({"score": np.ones(4)}, 1, 1, 0.0)
    dev = {Job("t", "w", "m", lr, 0, "dev"): scores for lr in (0.01, 0.001)}
    assert choose_lr(dev, "score") == {("t", "w", "m"): 0.001}
    with pytest.raises(InvalidValueError, match="only dev may choose"):
        choose_lr({Job("t", "w", "m", 0.01, 0, "test"): scores}, "score")


def test_one_seed_prints_no_spread(tmp_path: Path) -> None:
    task = FakeTask()
    grids = {"fake": {"read-pvla": (0.01,), "lora": (0.01,)}}
    outcome = run_protocol({"fake": task}, grids, [0], tmp_path, jobs=1)
    text = text_table(world_table(task, "w2", outcome, [0], resamples=200))
    assert "±" not in text and "reference" in text


def _tiny_grounding(tmp_path: Path):  # type: ignore[no-untyped-def]
    from readcli.demo.tlg import GroundingDemo
    from readcli.demo.tlg_profile import TLG_PROFILES

    quick = TLG_PROFILES["quick"]
    world = replace(
        quick.world, source_videos=8, source_val_videos=4, pool_videos=16, dev_queries=4, test_videos=6
    )
    profile = replace(quick, world=world, pretrain=replace(quick.pretrain, epochs=1), train_samples=4)
    return GroundingDemo(profile, tmp_path / "scratch", ("read-pvla", "lora"))


def test_grounding_selection_never_opens_the_test_file(tmp_path: Path) -> None:
    task = _tiny_grounding(tmp_path)
    task.prepare(tmp_path / "cache")
    worlds = next((tmp_path / "cache" / "tlg").glob("worlds-*"))
    for world in task.worlds:  # hide every test file: selection must not notice
        shutil.move(worlds / world / "test.jsonl", tmp_path / f"{world}-test.jsonl")
    dev = task.run("partial", "read-pvla", 1e-3, 0, "dev")
    assert dev.per_example["mAP"].shape == (4,) and 0 < dev.trainable < dev.total
    with pytest.raises(InputFileError, match="test"):
        task.run("partial", "read-pvla", 1e-3, 0, "test")
    shutil.move(tmp_path / "partial-test.jsonl", worlds / "partial" / "test.jsonl")
    again = task.run("partial", "read-pvla", 1e-3, 0, "dev")  # deterministic given its arguments
    assert np.array_equal(again.per_example["mAP"], dev.per_example["mAP"])
    test = task.run("partial", "read-pvla", 1e-3, 0, "test")  # reuses the parameters trained on dev's run
    assert test.per_example["mAP"].shape == (6,)


def test_quick_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["demo", "--quick", "--task", "tlg", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    result = runner.invoke(app, [*args, "--method", "read-pvla", "--method", "read", "--method", "full"])
    assert result.exit_code == 0, result.output
    assert "mastery bar" in result.output and "tlg / temporal" in result.output
    data = json.loads((out / "results.json").read_text())
    assert set(data["chosen_lr"]) == {
        f"tlg/{w}/{m}" for w in ("control", "temporal", "partial") for m in ("read-pvla", "read", "full")
    }
    assert data["sources"]["tlg"][0]["architecture"] == "moment_detr"
    assert (out / "differences.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".demo-runs-*"))  # the scratch parameters are gone


def test_bad_options_are_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--quick", "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--seeds 0 is invalid" in result.output
    result = runner.invoke(app, ["demo", "--task", "xyz", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--task 'xyz' is invalid" in result.output


def test_plain_progress_prints_each_stage_and_every_tenth_of_the_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from readcli.cli.commands.demo import _PlainLines
    from readcli.demo.execute import ProtocolEvent

    show = _PlainLines()
    show(ProtocolEvent("stage", "preparing tlg"))
    for done in range(1, 41):
        show(ProtocolEvent("run", f"run {done}", done, 40, eta=float(40 - done)))
    lines = capsys.readouterr().out.splitlines()
    assert "preparing tlg" in lines[0]
    runs = [line for line in lines if "runs " in line]
    assert len(runs) == 10 and runs[-1].endswith("runs 40/40, about 0.0 min left")
