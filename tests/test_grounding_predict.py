"""Moment-DETR prediction rows: scores, seconds, sorting, clipping, rounding, saliency, NMS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from readcli.errors import InvalidValueError
from readcli.training.grounding_predict import (
    PredictionSettings,
    QueryMeta,
    predictions_from_outputs,
    temporal_nms,
)


def _logits(fg_prob: list[float]) -> torch.Tensor:
    p = torch.tensor(fg_prob)
    return torch.stack([p.log(), (1 - p).log()], dim=-1)  # (Q, 2)


def _one_video(spans: list[list[float]], fg_prob: list[float], saliency: list[float], valid: int) -> dict:
    return {
        "pred_logits": _logits(fg_prob)[None],
        "pred_spans": torch.tensor(spans)[None],
        "saliency_scores": torch.tensor(saliency)[None],
        "mask": (torch.arange(len(saliency)) < valid)[None],
    }


META = QueryMeta(qid=7, query="a man opens a door", vid="vid_1", duration=100.0)


def _predict(case: dict, settings: PredictionSettings | None = None, meta: QueryMeta = META) -> dict:
    (row,) = predictions_from_outputs(case, case["mask"], [meta], settings)
    return row


def test_row_format_scores_sorting_and_rounding() -> None:
    case = _one_video(
        spans=[[0.5, 0.2], [0.333, 0.1], [0.1, 0.4]],
        fg_prob=[0.2, 0.91234567, 0.5],
        saliency=[0.1, 0.2, 0.3, 0.4],
        valid=4,
    )
    row = _predict(case)
    assert list(row) == ["qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"]
    assert (row["qid"], row["query"], row["vid"]) == (7, "a man opens a door", "vid_1")
    # by score: (0.333, 0.1) -> [28.3, 38.3] s -> multiples of 2: [28, 38];
    # (0.1, 0.4) -> [-10, 30] -> clipped at 0 -> [0, 30];
    # (0.5, 0.2) -> [40, 60]
    assert row["pred_relevant_windows"] == [[28.0, 38.0, 0.9123], [0.0, 30.0, 0.5], [40.0, 60.0, 0.2]]


def test_scores_are_the_softmax_foreground_probability() -> None:
    logits = torch.tensor([[[2.0, -1.0], [0.0, 0.0], [-3.0, 1.0]]])
    case = {
        "pred_logits": logits,
        "pred_spans": torch.full((1, 3, 2), 0.5),
        "saliency_scores": torch.zeros(1, 2),
    }
    (row,) = predictions_from_outputs(case, torch.ones(1, 2), [META], PredictionSettings(sort_results=False))
    expected = [round(1 / (1 + math.exp(-(a - b))), 4) for a, b in logits[0].tolist()]
    assert [w[2] for w in row["pred_relevant_windows"]] == expected


def test_round_half_to_even_like_torch_round() -> None:
    # [3, 5] s: 3/2 = 1.5 -> 2 and 5/2 = 2.5 -> 2 (round half to even), both land on 4 s
    case = _one_video(spans=[[0.04, 0.02]], fg_prob=[0.5], saliency=[0.0], valid=1)
    assert _predict(case)["pred_relevant_windows"] == [[4.0, 4.0, 0.5]]
    settings = PredictionSettings(clip_length=1.0)
    assert _predict(case, settings)["pred_relevant_windows"] == [[3.0, 5.0, 0.5]]


def test_four_decimal_rounding_comes_before_the_clip_rounding() -> None:
    # end 2.99996 s: officially first 3.0 (4 decimals), then 3 / 2 = 1.5 -> 2 -> 4 s (not 1.49998 -> 2 s)
    case = _one_video(spans=[[0.0149998, 0.0299996]], fg_prob=[0.5], saliency=[0.0], valid=1)
    assert _predict(case)["pred_relevant_windows"] == [[0.0, 4.0, 0.5]]


def test_clipping_to_max_ts_val_or_to_the_duration() -> None:
    case = _one_video(spans=[[0.9, 0.3]], fg_prob=[0.5], saliency=[0.0], valid=1)
    long_video = QueryMeta(qid=1, query="q", vid="v", duration=200.0)  # [150, 210] s
    assert _predict(case, meta=long_video)["pred_relevant_windows"] == [[150.0, 150.0, 0.5]]
    assert _predict(case, PredictionSettings(max_ts_val=None), meta=long_video)["pred_relevant_windows"] == [
        [150.0, 200.0, 0.5]
    ]
    short = QueryMeta(qid=1, query="q", vid="v", duration=100.0)  # [75, 105] s: 37.5 -> 38, 52.5 -> 52
    assert _predict(case, meta=short)["pred_relevant_windows"] == [[76.0, 104.0, 0.5]]  # official: 150 only
    assert _predict(case, PredictionSettings(max_ts_val=None), meta=short)["pred_relevant_windows"] == [
        [76.0, 100.0, 0.5]
    ]


def test_saliency_is_cut_to_valid_clips_in_half_precision() -> None:
    saliency = [0.123456789, -1.0001, 2.5, 9.0, 9.0]
    case = _one_video(spans=[[0.5, 0.2]], fg_prob=[0.5], saliency=saliency, valid=3)
    got = _predict(case)["pred_saliency_scores"]
    assert got == [float(np.float16(v)) for v in saliency[:3]]
    assert got[0] != pytest.approx(0.123456789, abs=1e-6)  # float16, as the official `.half()`


def test_nms_is_off_by_default_and_applies_after_max_before_nms() -> None:
    spans = [[0.5, 0.2], [0.52, 0.2], [0.2, 0.1], [0.8, 0.1]]  # [40, 60], [42, 62], [16, 24], [76, 84] s
    case = _one_video(spans=spans, fg_prob=[0.9, 0.8, 0.7, 0.6], saliency=[0.0], valid=1)
    assert len(_predict(case)["pred_relevant_windows"]) == 4
    nms = _predict(case, PredictionSettings(nms_thd=0.5))["pred_relevant_windows"]
    assert [w[2] for w in nms] == [0.9, 0.7, 0.6]  # [42, 62] overlaps [40, 60] with IoU 18/22
    cut = _predict(case, PredictionSettings(nms_thd=0.5, max_before_nms=3))["pred_relevant_windows"]
    assert [w[2] for w in cut] == [0.9, 0.7]
    capped = _predict(case, PredictionSettings(nms_thd=0.5, max_after_nms=1))["pred_relevant_windows"]
    assert [w[2] for w in capped] == [0.9]


def test_real_model_outputs_give_valid_rows(shared_data: Path) -> None:
    ref = np.load(shared_data / "moment_detr" / "parity_outputs.npz")
    outputs = {k: torch.from_numpy(ref[k]) for k in ("pred_logits", "pred_spans", "saliency_scores")}
    metas = [QueryMeta(qid=i, query=f"q{i}", vid=f"v{i}", duration=150.0) for i in range(3)]
    rows = predictions_from_outputs(outputs, torch.from_numpy(ref["src_vid_mask"]), metas)
    assert [len(r["pred_saliency_scores"]) for r in rows] == [75, 60, 31]
    fg = torch.from_numpy(ref["pred_logits"]).softmax(-1)[..., 0]  # (3, 10)
    for row, probs in zip(rows, fg, strict=True):
        windows = row["pred_relevant_windows"]
        assert len(windows) == 10
        scores = [w[2] for w in windows]
        assert scores == sorted(scores, reverse=True)
        assert scores == pytest.approx(sorted(probs.tolist(), reverse=True), abs=1e-4)
        assert all(0 <= st <= ed <= 150 and st % 2 == 0 and ed % 2 == 0 for st, ed, _ in windows)
    json.dumps(rows)  # plain JSON types only


def test_official_options_and_b1_squeezed_saliency(shared_data: Path) -> None:
    opts = json.loads((shared_data / "moment_detr" / "clip_only_opt.json").read_text())
    assert PredictionSettings.from_official_options(opts) == PredictionSettings()
    case = _one_video(spans=[[0.5, 0.2]], fg_prob=[0.5], saliency=[1.0, 2.0], valid=2)
    case["saliency_scores"] = case["saliency_scores"][0]  # the official model squeezes B = 1
    assert _predict(case)["pred_saliency_scores"] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": torch.tensor([[True, False, True]])}, "padding before valid clips"),
        ({"mask": torch.ones(1, 2, dtype=torch.bool)}, "video_mask has shape"),
        ({"pred_spans": torch.zeros(1, 2, 3)}, r"pred_spans'\] is \(1, 2, 3\)"),
        ({"pred_logits": torch.zeros(1, 3, 2)}, "differ"),
    ],
)
def test_bad_inputs_raise_one_clear_error(change: dict, message: str) -> None:
    case = {**_one_video(spans=[[0.5, 0.2]] * 2, fg_prob=[0.5] * 2, saliency=[0.0] * 3, valid=2), **change}
    with pytest.raises(InvalidValueError, match=message):
        _predict(case)


def test_bad_metas_and_settings_raise() -> None:
    case = _one_video(spans=[[0.5, 0.2]], fg_prob=[0.5], saliency=[0.0], valid=1)
    with pytest.raises(InvalidValueError, match="duration 0.0"):
        _predict(case, meta=QueryMeta(qid=1, query="q", vid="v", duration=0.0))
    with pytest.raises(InvalidValueError, match="B=2"):
        predictions_from_outputs(case, case["mask"], [META, META])
    with pytest.raises(InvalidValueError, match="nms_thd 1.5"):
        PredictionSettings(nms_thd=1.5)
    with pytest.raises(InvalidValueError, match="clip_length 0"):
        PredictionSettings(clip_length=0)
    with pytest.raises(InvalidValueError, match="max_before_nms 0"):
        PredictionSettings(max_before_nms=0)


# ------------------------------------------------------------------------------------------ temporal NMS


def test_temporal_nms_keeps_the_best_of_each_overlapping_group() -> None:
    windows = [[0, 10, 0.9], [1, 10, 0.8], [20, 30, 0.7], [0, 10, 0.95], [25, 35, 0.6]]
    # [1,10] vs [0,10]: IoU 0.9 > 0.5 gone; [25,35] vs [20,30]: IoU 5/15 kept
    assert temporal_nms(windows, 0.5) == [[0, 10, 0.95], [20, 30, 0.7], [25, 35, 0.6]]
    assert temporal_nms(windows, 0.34) == [[0, 10, 0.95], [20, 30, 0.7], [25, 35, 0.6]]
    assert temporal_nms(windows, 0.3) == [[0, 10, 0.95], [20, 30, 0.7]]  # 1/3 > 0.3
    assert temporal_nms(windows, 1.0) == sorted(windows, key=lambda w: -w[2])  # nothing is above IoU 1
    assert temporal_nms(windows, 0.5, max_after_nms=2) == [[0, 10, 0.95], [20, 30, 0.7]]


def test_temporal_nms_ties_edge_cases_and_errors() -> None:
    assert temporal_nms([], 0.5) == []
    tied = [[0, 4, 0.5], [10, 14, 0.5], [20, 24, 0.5]]
    assert temporal_nms(tied, 0.5) == tied  # equal scores keep input order
    # identical zero-length windows: hull 0 -> IoU 0 (official), so neither suppresses the other
    assert temporal_nms([[4, 4, 0.9], [4, 4, 0.8]], 0.0) == [[4, 4, 0.9], [4, 4, 0.8]]
    # strictly greater than the threshold suppresses: IoU exactly 1/3 survives 1/3
    assert temporal_nms([[0, 10, 0.9], [5, 15, 0.8]], 1 / 3) == [[0, 10, 0.9], [5, 15, 0.8]]
    with pytest.raises(InvalidValueError, match="threshold -0.1"):
        temporal_nms(tied, -0.1)
    with pytest.raises(InvalidValueError, match=r"window \[0, 4\]"):
        temporal_nms([[0, 4]], 0.5)
    with pytest.raises(InvalidValueError, match="max_after_nms 0"):
        temporal_nms(tied, 0.5, max_after_nms=0)
