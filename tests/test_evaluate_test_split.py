"""`readcli evaluate` on the QVHighlights test split, whose ground truth is public since the server closed.

Predictions are made from the ground truth itself (every GT window, the best annotator score per
clip), so the metrics are known without the model: recall@1 is 100, the mAP is what the official
10-window cap leaves, and Hit@1 is the share of videos with a clip rated at the level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readcli.cli import app

runner = CliRunner()


def _oracle_predictions(gt_rows: list[dict], path: Path) -> None:
    with path.open("w") as handle:
        for row in gt_rows:
            saliency = [0.0] * int(row["duration"] / 2)
            for clip, scores in zip(row["relevant_clip_ids"], row["saliency_scores"], strict=True):
                saliency[clip] = float(max(scores))
            windows = [[start, end, 1.0 - 0.01 * i] for i, (start, end) in enumerate(row["relevant_windows"])]
            handle.write(
                json.dumps(
                    {"qid": row["qid"], "pred_relevant_windows": windows, "pred_saliency_scores": saliency}
                )
            )
            handle.write("\n")


def test_evaluate_on_the_test_split_with_ground_truth(shared_data: Path, tmp_path: Path) -> None:
    gt = shared_data / "qvhighlights" / "highlight_test_with_gt.jsonl"
    if not gt.is_file():
        pytest.skip(f"{gt} not found")
    rows = [json.loads(line) for line in gt.read_text().splitlines()]
    assert len(rows) == 1542 and all(row["relevant_windows"] for row in rows)
    preds = tmp_path / "test_preds.jsonl"
    _oracle_predictions(rows, preds)
    result = runner.invoke(
        app, ["evaluate", "--task", "tlg", "--preds", str(preds), "--gt", str(gt), "--json"]
    )
    assert result.exit_code == 0, result.output
    brief = json.loads(result.stdout)["brief"]
    assert brief["MR-full-R1@0.5"] == brief["MR-full-R1@0.7"] == 100.0
    # only the first 10 windows of a row count: a query with n > 10 GT windows reaches recall 10 / n
    capped = 100 * np.mean([min(10, len(r["relevant_windows"])) / len(r["relevant_windows"]) for r in rows])
    assert brief["MR-full-mAP"] == brief["MR-full-mAP@0.5"] == brief["MR-full-mAP@0.75"] == round(capped, 2)
    assert brief["MR-full-mAP"] < 100.0  # 12 test queries have more than 10 windows
    for level, name in ((2, "Fair"), (3, "Good"), (4, "VeryGood")):
        rated = np.mean([max(max(s) for s in row["saliency_scores"]) >= level for row in rows])
        assert brief[f"HL-min-{name}-Hit1"] == round(100 * rated, 2)  # the top clip is the best-rated one
        assert 0.0 < brief[f"HL-min-{name}-mAP"] <= 100.0
    assert brief["HL-min-Fair-mAP"] > brief["HL-min-Good-mAP"] > brief["HL-min-VeryGood-mAP"]
    for bucket in ("short", "middle", "long"):
        assert 0.0 < brief[f"MR-{bucket}-mAP"] <= 100.0
