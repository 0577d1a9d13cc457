"""YouTube Highlights mAP and TVSum top-5 mAP: hand-computed cases and properties on the real val files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from readcli.errors import InputFileError, InvalidValueError
from readcli.evaluation import read_jsonl, tvsum_top5_map, youtube_highlight_map
from readcli.evaluation.saliency import evaluate_highlights


def _yt(qid: str, domain: str, labels: list[int]) -> dict[str, Any]:
    return {"qid": qid, "vid": qid, "domain": domain, "label": [[x] for x in labels]}


def test_youtube_map_by_hand() -> None:
    # dog/a ranked 1 0 1 0 -> 19/24; dog/b ranked 0 1 -> 1/4 (trapezoid from precision 1 at recall 0);
    # dog = (19/24 + 1/4) / 2 = 25/48 = 52.08 %; ski/c has no positive -> 0; average 26.04 %.
    gt = [_yt("a", "dog", [1, 0, 1, 0]), _yt("b", "dog", [1, 0]), _yt("c", "ski", [0, 0, 0])]
    preds = [
        {"qid": "a", "pred_saliency_scores": [0.9, 0.8, 0.7, 0.1]},
        {"qid": "b", "pred_saliency_scores": [0.1, 0.9]},
        {"vid": "c", "pred_saliency_scores": [3.0, 2.0, 1.0]},
    ]
    assert youtube_highlight_map(preds, gt) == {"mAP-dog": 52.08, "mAP-ski": 0.0, "mAP-avg": 26.04}


def test_youtube_ties_keep_clip_order_and_match_wins_over_label() -> None:
    # Tied scores rank the earlier clip first: labels 0 1 -> AP 1/4 (see above).
    row: dict[str, Any] = {"qid": "a", "domain": "dog", "label": [[0], [1]]}
    assert youtube_highlight_map([{"qid": "a", "pred_saliency_scores": [1.0, 1.0]}], [row]) == {
        "mAP-dog": 25.0,
        "mAP-avg": 25.0,
    }
    # UMT reads `match` (> 0 is a highlight) when the row has it.
    row["match"] = [1, -1]
    assert (
        youtube_highlight_map([{"qid": "a", "pred_saliency_scores": [1.0, 1.0]}], [row])["mAP-dog"] == 100.0
    )


def test_tvsum_top5_map_by_hand() -> None:
    # 7 clips ranked in clip order; 2 annotators.
    # Annotator 1 rates 5 1 5 1 1 1 5: median 1, positives clips 0, 2, 6. Top 5 labels 1 0 1 0 0,
    #   2 positives among them -> 19/24 (as in the YouTube case).
    # Annotator 2 rates 1, 1.5, .., 4 (TVSum's range is 1..5): median 2.5, positives clips 4, 5, 6.
    #   Top 5: 0 0 0 0 1 -> 1·(0 + 1/5)/2 = 1/10.
    # Video: (19/24 + 1/10) / 2 = 107/240 = 44.58 %.
    label = [[a, b] for a, b in zip([5, 1, 5, 1, 1, 1, 5], [1, 1.5, 2, 2.5, 3, 3.5, 4], strict=True)]
    gt = [{"qid": "v", "domain": "BK", "label": label}]
    preds = [{"qid": "v", "pred_saliency_scores": [7, 6, 5, 4, 3, 2, 1]}]
    assert tvsum_top5_map(preds, gt) == {"top5-mAP-BK": 44.58, "top5-mAP-avg": 44.58}


@pytest.fixture(scope="module")
def youtube_val(shared_data: Path) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in read_jsonl(shared_data / "youtube_highlight" / "youtube_highlight_val_release.jsonl").rows
    ]


@pytest.fixture(scope="module")
def tvsum_val(shared_data: Path) -> list[dict[str, Any]]:
    return [dict(r) for r in read_jsonl(shared_data / "tvsum" / "tvsum_val_release.jsonl").rows]


def _labels(row: dict[str, Any]) -> np.ndarray:
    return np.array([x[0] for x in row["label"]], dtype=float)


def test_youtube_real_val_label_scores_are_perfect_and_reversed_are_bounded(youtube_val: list[dict]) -> None:
    perfect = youtube_highlight_map(
        [{"qid": r["qid"], "pred_saliency_scores": _labels(r).tolist()} for r in youtube_val], youtube_val
    )
    assert set(perfect) == {
        f"mAP-{d}" for d in ("dog", "gymnastics", "parkour", "skating", "skiing", "surfing", "avg")
    }
    assert all(value == 100.0 for value in perfect.values())  # every val video has a highlight
    reversed_ = youtube_highlight_map(
        [{"qid": r["qid"], "pred_saliency_scores": (-_labels(r)).tolist()} for r in youtube_val], youtube_val
    )
    # Positives ranked last: precision never exceeds P/N, so a video's AP is at most its positive share.
    for domain in {r["domain"] for r in youtube_val}:
        share = np.mean([_labels(r).mean() for r in youtube_val if r["domain"] == domain])
        assert reversed_[f"mAP-{domain}"] <= 100 * share + 0.01
    assert reversed_["mAP-avg"] < 50


def test_youtube_real_val_one_domain_alone(youtube_val: list[dict]) -> None:
    rng = np.random.default_rng(0)
    preds = [
        {"qid": r["qid"], "pred_saliency_scores": rng.random(len(r["label"])).tolist()} for r in youtube_val
    ]
    everything = youtube_highlight_map(preds, youtube_val)
    dogs = [p for p, r in zip(preds, youtube_val, strict=True) if r["domain"] == "dog"]
    alone = youtube_highlight_map(dogs, youtube_val)  # only the predicted domain is evaluated
    assert alone == {"mAP-dog": everything["mAP-dog"], "mAP-avg": everything["mAP-dog"]}
    with pytest.raises(InputFileError, match=r"videos of the predicted domains \(dog\) have no prediction"):
        youtube_highlight_map(dogs[1:], youtube_val)


def test_tvsum_real_val_single_annotator_ranking(tvsum_val: list[dict]) -> None:
    # Ground truth cut to annotator 0: ranking by its own scores puts all its above-median clips
    # first (AP 1); reversed, the 5 lowest clips are at or below its median (every video has > 10
    # clips), so none is positive (AP 0).
    one = [{**r, "label": [[clip[0]] for clip in r["label"]]} for r in tvsum_val]
    own = [{"qid": r["qid"], "pred_saliency_scores": [c[0] for c in r["label"]]} for r in one]
    assert set(tvsum_top5_map(own, one).values()) == {100.0}
    flipped = [
        {"qid": p["qid"], "pred_saliency_scores": [-x for x in p["pred_saliency_scores"]]} for p in own
    ]
    assert set(tvsum_top5_map(flipped, one).values()) == {0.0}


def test_tvsum_real_val_consensus_beats_reversed(tvsum_val: list[dict]) -> None:
    consensus = [{"qid": r["qid"], "pred_saliency_scores": [sum(c) for c in r["label"]]} for r in tvsum_val]
    flipped = [
        {"qid": p["qid"], "pred_saliency_scores": [-x for x in p["pred_saliency_scores"]]} for p in consensus
    ]
    good, bad = tvsum_top5_map(consensus, tvsum_val), tvsum_top5_map(flipped, tvsum_val)
    assert len(good) == 11 and list(good)[-1] == "top5-mAP-avg"
    assert all(good[key] > bad[key] for key in good)


def test_score_count_and_unknown_ids_are_errors(tmp_path: Path) -> None:
    gt = [_yt("a", "dog", [1, 0, 1])]
    with pytest.raises(InputFileError, match=r"predictions\[0\]: 4 saliency scores, but .* has 3 clips"):
        youtube_highlight_map([{"qid": "a", "pred_saliency_scores": [1.0, 2.0, 3.0, 4.0]}], gt)
    with pytest.raises(
        InputFileError,
        match=r"predictions\[0\]: field 'pred_saliency_scores' = \[\]: List should have at least 1 item",
    ):
        youtube_highlight_map([{"qid": "a", "pred_saliency_scores": []}], gt)
    with pytest.raises(InputFileError, match="1 predicted ids are not in the ground truth: zz"):
        youtube_highlight_map([{"qid": "zz", "pred_saliency_scores": [1.0]}], gt)
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"qid": "a", "pred_saliency_scores": [1, "x", 2]}) + "\n")
    with pytest.raises(
        InputFileError,
        match=r"p\.jsonl:1: field 'pred_saliency_scores\[1\]' = 'x': Input should be a valid number",
    ):
        youtube_highlight_map(read_jsonl(path), gt)


def test_features_shorter_than_the_annotation_score_only_their_clips() -> None:
    # UMT's evaluator cuts the labels to the clips that have features: the positive at clip 3 is
    # left out, not counted as a miss. Scored clips 0..2 ranked 2, 0, 1 -> labels 0, 1, 0 of 1 positive:
    # the trapezoid from (recall 0, precision 0 at rank 1) to (recall 1, precision 1/2) = 1/4.
    # (Counting clip 3 as a missed positive would give 1/2 * (0 + 1/2) / 2 = 1/8.)
    gt = [_yt("a", "dog", [1, 0, 0, 1])]
    got = youtube_highlight_map([{"qid": "a", "pred_saliency_scores": [2.0, 1.0, 3.0]}], gt)
    assert got["mAP-dog"] == 25.0
    # TVSum: the median is taken over every annotated clip before the cut (as UMT: label.median())
    label = [[1], [1], [5], [5], [5], [1]]  # lower median 1 over 6 clips: clips 2, 3, 4 are positives
    tv = [{"qid": "v", "domain": "BK", "label": label}]
    cut = tvsum_top5_map([{"qid": "v", "pred_saliency_scores": [5, 4, 3, 2]}], tv)  # clips 0..3 scored
    # ranked clips 0, 1, 2, 3 -> labels 0, 0, 1, 1: AP = 0.5 * (0 + 1/3) / 2 + 0.5 * (1/3 + 1/2) / 2
    assert cut["top5-mAP-BK"] == round(100 * (0.5 * (1 / 3) / 2 + 0.5 * (1 / 3 + 1 / 2) / 2), 2)


def test_ties_that_decide_the_cut_are_returned_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # YouTube: video a ties a positive with a negative (the AP depends on their order); video b
    # ties only negatives, and video c has no tie.
    gt = [_yt("a", "dog", [0, 1, 0]), _yt("b", "dog", [1, 0, 0]), _yt("c", "dog", [0, 1])]
    preds = [
        {"qid": "a", "pred_saliency_scores": [0.5, 0.5, 0.1]},
        {"qid": "b", "pred_saliency_scores": [0.9, 0.2, 0.2]},
        {"qid": "c", "pred_saliency_scores": [0.3, 0.4]},
    ]
    result = evaluate_highlights(preds, gt, "youtube")
    assert result.tie_decided == ("a",) and result.videos == 3
    assert result.metrics == youtube_highlight_map(preds, gt)  # the same numbers either way
    warning = result.tie_warning("youtube")
    assert warning is not None and "in 1 of 3 videos (a)" in warning and "\n" not in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="readcli.evaluation.saliency"):
        youtube_highlight_map(preds, gt)
        youtube_highlight_map(preds[1:] + [{"qid": "a", "pred_saliency_scores": [0.5, 0.6, 0.1]}], gt)
    assert [r.getMessage() for r in caplog.records] == [warning]  # logged once, only when ties decide


def _tvsum_row(qid: str, domain: str, clips: int) -> dict[str, Any]:
    """One annotator who rates the first half of the clips 5 and the rest 1 (positives: first half)."""
    return {"qid": qid, "domain": domain, "label": [[5] if i < clips // 2 else [1] for i in range(clips)]}


def test_tvsum_ties_warn_only_when_they_reach_the_top_5() -> None:
    gt = [_tvsum_row("v", "BK", 12)]  # positives: clips 0..5
    distinct = [float(12 - i) for i in range(12)]
    below = distinct[:7] + [0.0] * 5  # clips 7..11 tie below the cut (all negatives anyway)
    mixed_below = distinct[:5] + [0.0] * 7  # clip 5 (positive) ties with 6..11 at ranks 6..12: below
    straddle = distinct[:3] + [1.0] * 9  # ranks 4..12 tie, positives and negatives: decides the top 5

    def decided(scores: list[float]) -> tuple[Any, ...]:
        return evaluate_highlights([{"qid": "v", "pred_saliency_scores": scores}], gt, "tvsum").tie_decided

    assert decided(below) == () and decided(mixed_below) == () and decided(straddle) == ("v",)
    result = evaluate_highlights([{"qid": "v", "pred_saliency_scores": straddle}], gt, "tvsum")
    warning = result.tie_warning("tvsum")
    assert warning is not None
    assert warning.startswith("tied scores decide which clips enter the top 5 in 1 of 1 videos (v)")
    with pytest.raises(InvalidValueError, match="highlight dataset 'charades' is not known"):
        evaluate_highlights([], gt, "charades")
