"""QVHighlights metrics: the README table to 0.01, the official layout, and hand-computed cases."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from readcli.errors import InputFileError
from readcli.evaluation import evaluate_qvhighlights, qvhighlights_report, read_jsonl
from readcli.evaluation.moment_metrics import IOU_THRESHOLDS, detection_ap, pad_windows

# The table in ../shared/data/qvhighlights/README.md (official evaluator, sample_val_preds.jsonl).
README_TABLE = {
    "MR-full-R1@0.5": 53.94,
    "MR-full-R1@0.7": 34.84,
    "MR-full-mAP": 32.2,
    "MR-full-mAP@0.5": 54.96,
    "MR-full-mAP@0.75": 31.01,
    "MR-long-mAP": 41.11,
    "MR-middle-mAP": 32.3,
    "MR-short-mAP": 3.28,
    "HL-min-Fair-mAP": 67.77,
    "HL-min-Fair-Hit1": 66.45,
    "HL-min-Good-mAP": 58.09,
    "HL-min-Good-Hit1": 64.45,
    "HL-min-VeryGood-mAP": 35.65,
    "HL-min-VeryGood-Hit1": 55.55,
}
THRESHOLD_KEYS = [str(t) for t in IOU_THRESHOLDS]


@pytest.fixture(scope="module")
def val_files(shared_data: Path) -> dict[str, Path]:
    folder = shared_data / "qvhighlights"
    return {
        "gt": folder / "highlight_val_release.jsonl",
        "sample": folder / "sample_val_preds.jsonl",
        "clip_only": folder / "clip_only_val_preds.jsonl",
    }


def test_reproduces_the_readme_table(val_files: dict[str, Path]) -> None:
    brief = evaluate_qvhighlights(read_jsonl(val_files["sample"]), read_jsonl(val_files["gt"]))
    assert list(brief) == list(README_TABLE)  # the official brief's keys, in its order
    for key, expected in README_TABLE.items():
        assert brief[key] == pytest.approx(expected, abs=0.01), key


def test_official_layout_and_internal_consistency(val_files: dict[str, Path]) -> None:
    report = qvhighlights_report(read_jsonl(val_files["clip_only"]), read_jsonl(val_files["gt"]))
    assert list(report) == [
        "brief",
        "HL-min-Fair",
        "HL-min-Good",
        "HL-min-VeryGood",
        "full",
        "long",
        "middle",
        "short",
    ]
    for bucket in ("full", "long", "middle", "short"):
        assert list(report[bucket]) == ["MR-mAP", "MR-R1"]
        assert list(report[bucket]["MR-mAP"]) == [*THRESHOLD_KEYS, "average"]
        assert list(report[bucket]["MR-R1"]) == THRESHOLD_KEYS
        per_threshold = [report[bucket]["MR-mAP"][k] for k in THRESHOLD_KEYS]
        # the average is taken before rounding; mAP falls as the IoU threshold rises
        assert report[bucket]["MR-mAP"]["average"] == pytest.approx(np.mean(per_threshold), abs=0.01)
        assert per_threshold == sorted(per_threshold, reverse=True)
    brief = report["brief"]
    assert brief["MR-full-mAP@0.75"] == report["full"]["MR-mAP"]["0.75"]
    assert brief["HL-min-Good-Hit1"] == report["HL-min-Good"]["HL-Hit1"]
    assert all(0 <= v <= 100 for v in brief.values())
    # a stricter saliency threshold leaves fewer positives: HL-mAP can only drop
    assert brief["HL-min-Fair-mAP"] >= brief["HL-min-Good-mAP"] >= brief["HL-min-VeryGood-mAP"]


def test_row_order_does_not_matter(val_files: dict[str, Path]) -> None:
    preds = [dict(r) for r in read_jsonl(val_files["sample"]).rows]
    gt = list(read_jsonl(val_files["gt"]).rows)
    random.Random(0).shuffle(preds)
    assert evaluate_qvhighlights(preds, gt) == pytest.approx(README_TABLE, abs=0.01)


def _gt(qid: int, windows: list[list[float]], duration: float = 150, **extra: Any) -> dict[str, Any]:
    return {"qid": qid, "duration": duration, "relevant_windows": windows, **extra}


def test_moment_retrieval_hand_computed() -> None:
    # GT windows [0,10] and [20,30]; predictions in score order: [0,10] (IoU 1 with the first GT),
    # [40,50] (no overlap), [20,26] (IoU 6/10 = 0.6 with the second).
    # IoU <= 0.6 (3 thresholds): TP FP TP, recall .5 .5 1, precision 1 .5 2/3 -> AP = .5·1 + .5·2/3 = 5/6.
    # IoU > 0.6 (7 thresholds): TP FP FP -> AP = .5·1 = .5.  mAP = (3·5/6 + 7·.5)/10 = .6.
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9], [40, 50, 0.8], [20, 26, 0.7]]}]
    report = qvhighlights_report(preds, [_gt(1, [[0, 10], [20, 30]])])
    full = report["full"]["MR-mAP"]
    assert full["0.5"] == 83.33 and full["0.6"] == 83.33 and full["0.65"] == 50.0
    assert full["average"] == 60.0
    assert report["full"]["MR-R1"]["0.95"] == 100.0  # the top window matches exactly
    # both GT windows are 10 s long: short bucket only; the empty buckets are NaN, as officially
    assert report["short"]["MR-mAP"]["average"] == 60.0
    assert math.isnan(report["middle"]["MR-mAP"]["average"]) and math.isnan(report["long"]["MR-R1"]["0.5"])


def test_ap_sorts_by_score_but_r1_takes_the_first_window_of_the_row() -> None:
    # File order: a miss first, the exact window second with the higher score.
    preds = [{"qid": 1, "pred_relevant_windows": [[40, 50, 0.1], [0, 10, 0.9]]}]
    brief = evaluate_qvhighlights(preds, [_gt(1, [[0, 10]])])
    assert brief["MR-full-mAP"] == 100.0  # ranked by score the hit comes first
    assert brief["MR-full-R1@0.5"] == 0.0  # the official R1 reads pred_relevant_windows[0]


def test_only_the_first_ten_windows_count() -> None:
    misses = [[100 + 2 * i, 101 + 2 * i, 0.5] for i in range(10)]
    preds = [{"qid": 1, "pred_relevant_windows": [*misses, [0, 10, 0.99]]}]  # the hit is 11th
    assert evaluate_qvhighlights(preds, [_gt(1, [[0, 10]])])["MR-full-mAP"] == 0.0
    preds = [{"qid": 1, "pred_relevant_windows": [*misses[:9], [0, 10, 0.01]]}]  # the hit is 10th
    # ranked last of 10: precision 1/10 at recall 1 -> AP 0.1 at every threshold
    assert evaluate_qvhighlights(preds, [_gt(1, [[0, 10]])])["MR-full-mAP"] == 10.0


def test_a_ground_truth_window_is_claimed_once() -> None:
    # Two predictions on the same single GT window: the second is a false positive.
    # TP FP: precision 1 .5, recall 1 1 -> AP 1; adding a second GT the duplicate cannot claim:
    # recall .5 .5 -> AP .5.
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9], [0, 10, 0.8]]}]
    assert evaluate_qvhighlights(preds, [_gt(1, [[0, 10]])])["MR-full-mAP"] == 100.0
    assert evaluate_qvhighlights(preds, [_gt(1, [[0, 10], [60, 70]])])["MR-full-mAP"] == 50.0


def test_length_buckets_keep_only_the_windows_in_range() -> None:
    # One query with a 4 s window (short) and a 40 s window (long); the prediction hits the long one.
    preds = [{"qid": 1, "pred_relevant_windows": [[50, 90, 0.9]]}]
    brief = evaluate_qvhighlights(preds, [_gt(1, [[0, 4], [50, 90]])])
    assert brief["MR-long-mAP"] == 100.0  # only the long window is in the long bucket
    assert brief["MR-short-mAP"] == 0.0
    assert brief["MR-full-mAP"] == 50.0  # recall 1/2 at precision 1
    assert math.isnan(brief["MR-middle-mAP"])


def test_highlight_metrics_hand_computed() -> None:
    # Query 1: 5 clips; relevant clips 1 [4,2,0] and 3 [1,3,4]; ranking by score: 1, 3, 4, 2, 0.
    #   Fair (>=2): annotator APs 1 (clip 1 first), 1 (clips 1, 3 first), .5 (clip 3 second) -> 5/6
    #   Good (>=3): 1, .5, .5 -> 2/3.   VeryGood (>=4): 1, 0 (no positive), .5 -> 1/2.
    #   Hit1: clip 1 has a score >= 4 from annotator 1 -> a hit at every level.
    # Query 2: 2 clips, clip 0 rated [4,4,4]; 3 scores given: the AP uses the first 2 (clip 1
    #   ranked first, a negative -> AP .5), the argmax is clip 2, past the video -> Hit1 miss.
    gt = [
        _gt(1, [[2, 4]], duration=10, relevant_clip_ids=[1, 3], saliency_scores=[[4, 2, 0], [1, 3, 4]]),
        _gt(2, [[0, 2]], duration=4, relevant_clip_ids=[0], saliency_scores=[[4, 4, 4]]),
    ]
    preds = [
        {"qid": 1, "pred_saliency_scores": [0.1, 0.9, 0.2, 0.8, 0.3]},
        {"qid": 2, "pred_saliency_scores": [0.1, 0.2, 0.9]},
    ]
    brief = evaluate_qvhighlights(preds, gt)
    assert list(brief) == [
        f"HL-min-{lvl}-{m}" for lvl in ("Fair", "Good", "VeryGood") for m in ("mAP", "Hit1")
    ]
    assert brief["HL-min-Fair-mAP"] == 66.67  # (5/6 + 1/2) / 2
    assert brief["HL-min-Good-mAP"] == 58.33  # (2/3 + 1/2) / 2
    assert brief["HL-min-VeryGood-mAP"] == 50.0
    assert brief["HL-min-Fair-Hit1"] == brief["HL-min-VeryGood-Hit1"] == 50.0


def test_short_saliency_predictions_are_zero_padded() -> None:
    # 3 clips, clip 2 positive; scores for 2 clips only, both negative: clip 2 gets 0 and ranks last
    # (precision 1/3); with scores -1, -2 the padded 0 ranks first (AP 1).
    gt = [_gt(1, [[4, 6]], duration=6, relevant_clip_ids=[2], saliency_scores=[[4, 4, 4]])]
    low = evaluate_qvhighlights([{"qid": 1, "pred_saliency_scores": [0.5, 0.4]}], gt)
    high = evaluate_qvhighlights([{"qid": 1, "pred_saliency_scores": [-1.0, -2.0]}], gt)
    assert low["HL-min-Fair-mAP"] == 33.33 and high["HL-min-Fair-mAP"] == 100.0


def _reference_query_ap(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """The greedy matching and VOC AP written out plainly, one query and one threshold."""
    pred = pred[np.argsort(-pred[:, 2], kind="stable")]
    claimed: set[int] = set()
    hits = []
    for start, end, _ in pred:
        ious = [max(0.0, min(end, e) - max(start, s)) for s, e in gt]
        ious = [inter / ((end - start) + (e - s) - inter) for inter, (s, e) in zip(ious, gt, strict=True)]
        candidates = [j for j in range(len(gt)) if ious[j] >= threshold and j not in claimed]
        best = max(candidates, key=lambda j: (ious[j], j), default=None)  # later window wins a tie
        hits.append(best is not None)
        if best is not None:
            claimed.add(best)
    found = np.cumsum(hits)
    precision = found / np.arange(1, len(hits) + 1)
    recall = found / len(gt)
    ap, previous = 0.0, 0.0
    for i in range(len(hits)):
        ap += (recall[i] - previous) * precision[i:].max()
        previous = recall[i]
    return ap


def test_vectorised_matching_agrees_with_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(60):
        starts = rng.integers(0, 20, size=rng.integers(1, 5)) * 2.0
        gts.append(np.stack([starts, starts + rng.choice([2, 4, 10, 20], size=len(starts))], 1))
        p_starts = rng.integers(0, 20, size=rng.integers(1, 11)) * 2.0
        scores = rng.choice([0.2, 0.5, 0.9], size=len(p_starts))  # ties in score too
        preds.append(np.stack([p_starts, p_starts + rng.choice([2, 4, 8], size=len(p_starts)), scores], 1))
    pred, pred_mask = pad_windows(preds, 3)
    gt, gt_mask = pad_windows(gts, 2)
    ours = detection_ap(pred, pred_mask, gt, gt_mask, np.asarray(IOU_THRESHOLDS))  # (Q, T)
    for q in range(len(preds)):
        for t, threshold in enumerate(IOU_THRESHOLDS):
            assert ours[q, t] == pytest.approx(_reference_query_ap(preds[q], gts[q], threshold), abs=1e-12)


def test_mismatched_qids_are_named() -> None:
    preds = [{"qid": q, "pred_relevant_windows": [[0, 2, 1.0]]} for q in (1, 2, 99)]
    with pytest.raises(
        InputFileError,
        match=r"1 qids in the ground truth have no prediction: 3;.*not in the ground truth: 99",
    ):
        evaluate_qvhighlights(preds, [_gt(q, [[0, 2]]) for q in (1, 2, 3)])


def test_missing_field_and_duplicate_qid_name_the_file_and_line(tmp_path: Path) -> None:
    pred_file = tmp_path / "preds.jsonl"
    rows = [{"qid": 1, "pred_relevant_windows": [[0, 2, 1.0]]}, {"qid": 2}]
    pred_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    gt = [_gt(1, [[0, 2]]), _gt(2, [[0, 2]])]
    with pytest.raises(InputFileError, match=r"preds\.jsonl:2: missing field 'pred_relevant_windows'"):
        evaluate_qvhighlights(read_jsonl(pred_file), gt)
    pred_file.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(InputFileError, match=r"preds\.jsonl:3: duplicate id 1 \(first at .*preds\.jsonl:1\)"):
        evaluate_qvhighlights(read_jsonl(pred_file), gt)


def test_bad_values_are_refused() -> None:
    gt = [_gt(1, [[0, 2]], duration=10, relevant_clip_ids=[7], saliency_scores=[[1, 1, 1]])]
    with pytest.raises(InputFileError, match=r"relevant clip id 7 outside the video .* use ids 0\.\.4"):
        evaluate_qvhighlights([{"qid": 1, "pred_saliency_scores": [1.0]}], gt)
    with pytest.raises(
        InputFileError,
        match=r"predictions\[0\]: field 'pred_relevant_windows\[0\]' = \[0, 2\]: too few items",
    ):
        evaluate_qvhighlights([{"qid": 1, "pred_relevant_windows": [[0, 2]]}], gt)  # no score
    with pytest.raises(InputFileError, match="neither 'pred_relevant_windows' nor 'pred_saliency_scores'"):
        evaluate_qvhighlights([{"qid": 1}], gt)


def test_ground_truth_without_windows_is_left_out_of_moment_metrics() -> None:
    # Query 2 has no GT window (AP undefined; the official code gives NaN): scored on query 1 only.
    preds = [{"qid": q, "pred_relevant_windows": [[0, 10, 0.9]]} for q in (1, 2)]
    assert evaluate_qvhighlights(preds, [_gt(1, [[0, 10]]), _gt(2, [])])["MR-full-mAP"] == 100.0
