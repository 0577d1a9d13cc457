"""Highlight detection: UMT's loss and targets, metrics on hand-computed cases, the per-domain CLI table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from readcli.backbones.registry import build_backbone, save_backbone
from readcli.backbones.umt.config import tiny_umt_config
from readcli.cli.app import app
from readcli.data import load_grounding_split
from readcli.data.collate import collate_moments
from readcli.features.store import save_feature_array
from readcli.training.highlight_task import HighlightTask, saliency_bce

runner = CliRunner()
VIDEO_DIM, TEXT_DIM = 4, 12  # raw features (no TEF for highlight datasets) = the tiny UMT's video input


def youtube_row(qid: str, domain: str, match: list[int]) -> dict[str, Any]:
    clips = [[50.0 * i, 50.0 * i + 100.0] for i in range(len(match))]
    return {"qid": qid, "vid": qid, "query": domain, "duration": 2.0 * len(match), "domain": domain,
            "fps": 25.0, "frames": 50.0 * len(match) + 50, "clip": clips, "match": match}  # fmt: skip


def tvsum_row(qid: str, domain: str, scores: np.ndarray) -> dict[str, Any]:
    return {"qid": qid, "vid": qid, "query": f"title {qid}", "duration": len(scores), "domain": domain,
            "label": scores.tolist()}  # fmt: skip


def write_dataset(root: Path, rows: dict[str, list[dict[str, Any]]], seed: int = 0) -> Path:
    """train/val jsonl plus one feature row per clip; a clip is highlight-like along feature 0."""
    rng = np.random.default_rng(seed)
    for split, split_rows in rows.items():
        (root / f"{split}.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
        for row in split_rows:
            target = np.asarray(
                row["match"] if "match" in row else np.mean(row["label"], axis=1), dtype=float
            )
            video = rng.normal(size=(len(target), VIDEO_DIM))
            video[:, 0] += 2.0 * (target > np.median(target))
            save_feature_array(root / "video_features" / "clip" / f"{row['vid']}.npz", "features", video)
            text = rng.normal(size=(3, TEXT_DIM))
            save_feature_array(root / "text_features" / f"qid{row['qid']}.npz", "last_hidden_state", text)
    return root


def youtube_data(root: Path) -> Path:
    rng = np.random.default_rng(1)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for domain in ("dog", "skiing"):
        for split, count in (("train", 3), ("val", 2)):
            for i in range(count):
                match = [int(m) for m in rng.choice([-1, 0, 1], size=int(rng.integers(6, 10)))]
                match[0], match[1] = 1, 0  # every video has a highlight and a non-highlight
                rows[split].append(youtube_row(f"{domain}{split}{i}", domain, match))
    return write_dataset(root, rows)


def tvsum_data(root: Path) -> Path:
    rng = np.random.default_rng(2)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for domain in ("BK", "VT"):
        for split, count in (("train", 2), ("val", 1)):
            for i in range(count):
                scores = rng.integers(1, 6, size=(int(rng.integers(7, 11)), 20)).astype(float)
                rows[split].append(tvsum_row(f"{domain}{split}{i}", domain, scores))
    return write_dataset(root, rows)


class FixedScores(torch.nn.Module):
    """A 'model' whose saliency for clip i of every video is scores[i]."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)
        self.collect_block_states = False

    def forward(self, src_vid: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        return {"saliency_scores": self.scores[: src_vid.shape[1]].expand(src_vid.shape[0], -1)}


def test_bce_matches_the_official_mean_over_all_positions() -> None:
    scores = torch.tensor([[0.0, 2.0, -1.0], [1.0, 0.0, 5.0]])
    target = torch.tensor([[1.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    terms = [math.log(2), math.log1p(math.e**2), math.log1p(math.e), 0.5 * math.log1p(math.e**-1)
             + 0.5 * math.log1p(math.e), math.log(2), 0.0]  # fmt: skip
    assert float(saliency_bce(scores, target, mask)) == pytest.approx(sum(terms) / 6, rel=1e-6)


def test_youtube_target_and_map_by_hand(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, {"train": [youtube_row("a", "dog", [0, 1, -1, 1])],
                                    "val": [youtube_row("a", "dog", [0, 1, -1, 1])]})  # fmt: skip
    split = load_grounding_split(data, "val")
    gt = [json.loads(line) for line in (data / "val.jsonl").read_text().splitlines()]
    task = HighlightTask(split.dataset, split.dataset, gt, "youtube")
    batch = collate_moments([split.dataset[0]])
    assert task.targets(batch).tolist() == [[0.0, 1.0, 0.0, 1.0]]  # match > 0
    # ranking 0.9, 0.8, 0.1, 0.7 -> labels 0, 1, 1, 0: trapezoid AP = .5 * .25 + .5 * (.5 + 2/3) / 2
    metrics = task.evaluate(FixedScores([0.9, 0.8, 0.1, 0.7]), torch.device("cpu")).metrics
    assert metrics == {"mAP-dog": 41.67, "mAP-avg": 41.67}


def test_tvsum_target_is_the_scaled_annotator_mean_and_top5_map_by_hand(tmp_path: Path) -> None:
    # 6 clips, 20 identical annotators scoring 1..5 then 1; above the (lower) median 2: clips 2, 3, 4
    scores = np.repeat(np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [1.0]]), 20, axis=1)
    data = write_dataset(
        tmp_path, {"train": [tvsum_row("v", "BK", scores)], "val": [tvsum_row("v", "BK", scores)]}
    )
    split = load_grounding_split(data, "val")
    gt = [json.loads(line) for line in (data / "val.jsonl").read_text().splitlines()]
    task = HighlightTask(split.dataset, split.dataset, gt, "tvsum")
    targets = task.targets(collate_moments([split.dataset[0]]))[0].tolist()
    assert targets == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 0.0])  # (mean - 1) / 4
    # ranking clips 0, 2, 5, 3, 1, 4 -> top 5 labels 0, 1, 0, 1, 0: AP over the 2 positives among them
    ap = 0.5 * (0.0 + 0.5) / 2 + 0.5 * (1 / 3 + 0.5) / 2
    metrics = task.evaluate(FixedScores([6.0, 2.0, 5.0, 3.0, 1.0, 4.0]), torch.device("cpu")).metrics
    assert metrics["top5-mAP-BK"] == pytest.approx(round(100 * ap, 2))


@pytest.mark.parametrize("dataset", ["youtube", "tvsum"])
def test_domain_all_trains_each_domain_and_prints_the_table(tmp_path: Path, dataset: str) -> None:
    data = youtube_data(tmp_path / "data") if dataset == "youtube" else tvsum_data(tmp_path / "data")
    backbone = save_backbone(build_backbone(tiny_umt_config(v_feat_dim=VIDEO_DIM)), tmp_path / "umt")
    out = tmp_path / "runs"
    args = ["finetune", "--task", "tlg", "--dataset", dataset, "--domain", "all", "--data", str(data),
            "--backbone", str(backbone), "--method", "read", "--epochs", "2", "--batch-size", "2",
            "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    domains = ["dog", "skiing"] if dataset == "youtube" else ["BK", "VT"]
    table = json.loads((out / "domains.json").read_text())
    assert sorted(table["domains"]) == domains and table["metric"] == (
        "mAP" if dataset == "youtube" else "top5-mAP"
    )
    values = [table["domains"][d]["value"] for d in domains]
    assert all(0.0 <= v <= 100.0 for v in values) and table["average"] == pytest.approx(
        np.mean(values), abs=0.01
    )
    for domain in domains:
        metrics = json.loads((out / domain / "metrics.json").read_text())
        assert len(metrics["history"]) == 2 and (out / domain / "best" / "adapter_config.json").is_file()
        assert all(
            domain in row["qid"] for row in map(json.loads, (out / domain / "best_val_preds.jsonl").open())
        )
    assert all(d in result.output for d in domains) and "avg" in result.output
    again = runner.invoke(app, ["finetune", "--resume", str(out)])
    assert again.exit_code == 0, again.output
    assert "reused finished runs" in again.output and json.loads((out / "domains.json").read_text()) == table


def test_highlight_options_are_checked(tmp_path: Path) -> None:
    data = youtube_data(tmp_path / "data")
    base = ["finetune", "--task", "tlg", "--data", str(data), "--backbone", "x", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*base, "--dataset", "tvsum", "--domain", "all"])
    assert result.exit_code == 1 and "--dataset tvsum does not fit" in result.output
    result = runner.invoke(app, [*base, "--dataset", "qvh", "--domain", "all"])
    assert result.exit_code == 1 and "'qvh' is not a highlight dataset" in result.output
    result = runner.invoke(app, [*base, "--domain", "all"])
    assert result.exit_code == 1 and "needs --dataset youtube or --dataset tvsum" in result.output
    result = runner.invoke(app, [*base, "--dataset", "youtube", "--domain", "cats"])
    assert result.exit_code == 1 and "unknown domain 'cats'" in result.output and "skiing" in result.output
