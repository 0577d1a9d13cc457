"""`readcli demo`: the synthetic world's structure, the table maths, and one quick end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readcli.cli.app import app
from readcli.demo.methods import DEMO_METHODS
from readcli.demo.runner import RunOutcome
from readcli.demo.world import WorldConfig, domain_looks, plan_video, query_row, render_query
from readcli.errors import InvalidValueError

runner = CliRunner()


def test_every_query_needs_order_to_resolve() -> None:
    config = WorldConfig()
    rng = np.random.default_rng(0)
    for _ in range(50):
        plan = plan_video(rng, config)
        events = [run[0] for run in plan.runs]
        assert events.count(plan.x) == 2 and events.count(plan.y) == 1
        first, second = (run for run in plan.runs if run[0] == plan.x)
        anchor = next(run for run in plan.runs if run[0] == plan.y)
        assert first[2] < anchor[1] and anchor[2] < second[1]  # X, then Y, then X again
        assert all(a[2] < b[1] for a, b in zip(plan.runs, plan.runs[1:], strict=False))  # gaps
        assert plan.runs[-1][2] <= plan.num_clips
        after = query_row(1, "v", plan, "after", config.clip_len)
        before = query_row(2, "v", plan, "before", config.clip_len)
        assert after["relevant_windows"] == [[second[1] * 2.0, second[2] * 2.0]]
        assert before["relevant_windows"] == [[first[1] * 2.0, first[2] * 2.0]]
        assert after["relevant_windows"] != before["relevant_windows"]


def test_query_tokens_name_the_events_and_relation() -> None:
    config = WorldConfig()
    _, words = domain_looks(config)
    plan = plan_video(np.random.default_rng(1), config)
    tokens = render_query(np.random.default_rng(2), words, plan, "before", noise=0.0)
    expected = words[[plan.x, config.num_events + 1, plan.y]]
    assert np.allclose(tokens, expected, atol=1e-6)


def test_target_domain_is_shifted_and_source_is_not() -> None:
    looks, _ = domain_looks(WorldConfig())
    assert np.allclose(looks["source"].rotation, np.eye(32))
    rotation = looks["target"].rotation
    assert np.allclose(rotation @ rotation.T, np.eye(32), atol=1e-8)  # a rotation: nothing is lost
    assert not np.allclose(rotation, np.eye(32), atol=0.1)


def test_bad_world_config_names_the_valid_range() -> None:
    with pytest.raises(InvalidValueError, match="min_clips >= 24"):
        WorldConfig(min_clips=10)


def test_summarise_mean_and_std_over_seeds() -> None:
    from readcli.demo.report import markdown_table, summarise

    def outcome(seed: int, value: float) -> RunOutcome:
        metrics = {"MR-full-mAP": value, "MR-full-R1@0.5": 2 * value, "MR-full-R1@0.7": 0.0}
        return RunOutcome("read-pvla", seed, metrics, trainable=10, total=1000, seconds=1.0)

    rows = summarise([outcome(0, 10.0), outcome(1, 14.0)])
    assert len(rows) == 1 and rows[0].mean["MR-full-mAP"] == 12.0
    assert rows[0].std["MR-full-mAP"] == pytest.approx(np.std([10.0, 14.0], ddof=1))
    assert rows[0].percent == 1.0
    assert "| **READ-PVLA** | 10 (1.00 %) | 12.00 ± 2.83 | 24.00 ± 5.66 | 0.00 ± 0.00 |" in markdown_table(
        rows
    )


def test_bad_options_are_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--quick", "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--seeds 0 is invalid" in result.output
    result = runner.invoke(app, ["demo", "--quick", "--method", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "'nope'" in result.output and "read-pvla" in result.output


def test_quick_demo_end_to_end_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["demo", "--quick", "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "trained and cached" in result.output and "READ-PVLA" in result.output
    payload = json.loads((out / "results.json").read_text())
    assert [row["key"] for row in payload["rows"]] == list(DEMO_METHODS)
    assert payload["pretrain_reused"] is False and payload["profile"] == "quick"
    for row in payload["rows"]:
        assert 0.0 <= row["mean"]["MR-full-mAP"] <= 100.0 and row["trainable"] > 0
    full = next(row for row in payload["rows"] if row["key"] == "full")
    assert full["percent"] == 100.0
    table = (out / "results.md").read_text()
    assert all(method.label in table for method in DEMO_METHODS.values())
    assert (out / "map_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cached = list((tmp_path / "cache" / "demo").glob("backbone-*/model.safetensors"))
    assert len(cached) == 2  # the Moment-DETR and the UMT source backbones
    umt = next(row for row in payload["rows"] if row["key"] == "umt-read-pvla")
    read_pvla = next(row for row in payload["rows"] if row["key"] == "read-pvla")
    assert umt["label"] == "READ-PVLA, UMT backbone" and umt["total"] != read_pvla["total"]

    again = runner.invoke(app, ["demo", "--quick", "--seeds", "1", "--method", "proj", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "reused" in again.output
    payload = json.loads((out / "results.json").read_text())
    assert payload["pretrain_reused"] is True and [row["key"] for row in payload["rows"]] == ["proj"]
