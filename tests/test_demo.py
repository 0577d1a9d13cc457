"""`readcli demo` worlds and scoring: each world's defining property, the splits, the per-query metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from readcli.demo.fit import query_scores
from readcli.demo.world import WorldConfig, domain_layout, domain_look, plan_video, render_video, vocabulary
from readcli.demo.world_files import ensure_worlds
from readcli.errors import InvalidValueError
from readcli.evaluation import evaluate_qvhighlights

SMALL = replace(
    WorldConfig(), source_videos=6, source_val_videos=4, pool_videos=12, dev_queries=4, test_videos=8
)


def test_temporal_pose_x_appears_in_two_events_so_one_clip_cannot_decide() -> None:
    config = WorldConfig()
    look, layout = domain_look(config, "temporal"), domain_layout(config, "temporal")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = int(rng.integers(0, config.num_events))
        plan = plan_video(rng, config, layout, x)
        events = [run[0] for run in plan.runs]
        assert x in events and (x - 1) % config.num_events in events  # the confuser is always there
        clean = render_video(rng, replace(look, noise=0.0), plan)  # (N_V, D_v)
        pose_x = look.prototypes[x]
        runs_with_pose_x = {
            event
            for event, start, end in plan.runs
            if any(np.allclose(clean[c], pose_x, atol=1e-5) for c in range(start, end))
        }
        # every run of >= 2 clips shows both poses, so pose X shows in X's run and in X - 1's
        assert runs_with_pose_x == {x, (x - 1) % config.num_events}


def test_control_only_changes_appearance_and_partial_only_adds_unmatched_content() -> None:
    config = WorldConfig()
    source, control = domain_look(config, "source"), domain_look(config, "control")
    assert np.allclose(source.prototypes, control.prototypes)
    assert not np.allclose(control.rotation, np.eye(config.video_dim), atol=0.1)
    assert np.allclose(control.rotation @ control.rotation.T, np.eye(config.video_dim), atol=1e-8)
    assert not control.motion and not domain_look(config, "partial").motion
    src, part = domain_layout(config, "source"), domain_layout(config, "partial")
    assert part.events == 2 * src.events and part.min_clips == 2 * src.min_clips and part.fillers == 3
    words = vocabulary(config)
    assert words.shape == (1 + config.num_events + 10, config.text_dim)


def test_worlds_are_written_with_disjoint_train_dev_test(tmp_path: Path) -> None:
    root, reused = ensure_worlds(SMALL, tmp_path / "w")
    assert not reused and ensure_worlds(SMALL, tmp_path / "w")[1]
    source = [json.loads(line) for line in (root / "source" / "train.jsonl").read_text().splitlines()]
    assert len(source) == 3 * SMALL.source_videos  # one query per event shown
    for world in ("control", "temporal", "partial"):
        splits = {
            name: [json.loads(line) for line in (root / world / f"{name}.jsonl").read_text().splitlines()]
            for name in ("train", "dev", "test")
        }
        assert [len(splits[n]) for n in ("train", "dev", "test")] == [8, 4, 8]
        vids = {n: {row["vid"] for row in rows} for n, rows in splits.items()}
        assert not (vids["train"] & vids["dev"]) and not (vids["test"] & (vids["train"] | vids["dev"]))
    partial = json.loads((root / "partial" / "test.jsonl").read_text().splitlines()[0])
    assert len(partial["query"].split()) == 2 + SMALL.filler_words


def test_bad_world_config_names_the_valid_range() -> None:
    with pytest.raises(InvalidValueError, match="min_clips"):
        WorldConfig(min_clips=10)
    with pytest.raises(InvalidValueError, match="dev_queries"):
        WorldConfig(dev_queries=400)


def test_per_query_scores_average_to_the_official_metrics() -> None:
    rng = np.random.default_rng(3)
    truth, preds = [], []
    for qid in range(30):
        start = float(rng.integers(0, 20)) * 2
        truth.append({"qid": qid, "relevant_windows": [[start, start + 6.0]]})
        windows = [
            [start + float(rng.normal(0, 2)), start + 6 + float(rng.normal(0, 2)), float(s)]
            for s in rng.random(4)
        ]
        windows = [[min(a, b), max(a, b) + 0.1, s] for a, b, s in windows]
        preds.append({"qid": qid, "pred_relevant_windows": sorted(windows, key=lambda w: -w[2])})
    per_query = query_scores(preds, truth)
    official = evaluate_qvhighlights(preds, [{**t, "duration": 150.0} for t in truth])
    assert per_query["mAP"].shape == (30,)
    assert per_query["mAP"].mean() == pytest.approx(official["MR-full-mAP"], abs=0.01)
    assert per_query["R1@0.5"].mean() == pytest.approx(official["MR-full-R1@0.5"], abs=0.01)
    assert per_query["R1@0.7"].mean() == pytest.approx(official["MR-full-R1@0.7"], abs=0.01)


def test_demo_help_lists_every_method_row() -> None:
    """`demo --method` names its choices; the help's list is the methods table's keys."""
    from readcli.cli.commands.demo import METHOD_NAMES
    from readcli.demo.methods import DEMO_METHODS

    assert METHOD_NAMES.split(", ") == list(DEMO_METHODS)


def test_the_plot_draws_the_unadapted_backbone_and_a_legend() -> None:
    """The reference line sits at (unadapted score - READ-PVLA's mean); without it the plot still draws."""
    from readcli.demo.report import Row, WorldTable, _unadapted_difference, plot_png
    from readcli.demo.stats import Comparison

    ours = Row("read-pvla", "READ-PVLA", "ours", 1e-2, 10, 100, {"mAP": 50.0}, {"mAP": 1.0}, None)
    other = Row(
        "read", "READ (= READ-PVLA w/o PVLA)", "ablation", 1e-2, 10, 100, {"mAP": 49.0}, {"mAP": 1.0},
        Comparison(-1.0, -2.0, 0.5, "not separable", 0.4, "not separable", 0.4),
    )  # fmt: skip
    table = WorldTable("tlg", "control", ("mAP",), 2, 10, (other, ours))
    assert _unadapted_difference(table, {"tlg": {"control": {"mAP": 30.0}}}) == -20.0
    assert _unadapted_difference(table, None) is None
    assert plot_png([table], {"tlg": {"control": {"mAP": 30.0}}})[:4] == b"\x89PNG"
