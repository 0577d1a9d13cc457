"""Moment-DETR losses: span ops, Hungarian matching, loss parts by hand, gradients, aux parts, training."""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from readcli.errors import InvalidValueError, TrainingError
from readcli.training.distributed import Dist
from readcli.training.grounding_loss import (
    GroundingCriterion,
    GroundingLossWeights,
    GroundingTargets,
    HungarianMatcher,
    matched_count,
)
from readcli.training.span_ops import (
    generalized_temporal_iou,
    paired_generalized_temporal_iou,
    span_cxw_to_xx,
    span_xx_to_cxw,
    temporal_iou,
)
from readcli.training.step import Share

# ----------------------------------------------------------------------------------------------- span ops


def test_span_format_round_trip() -> None:
    cxw = torch.tensor([[0.5, 0.2], [0.1, 0.4]])
    xx = span_cxw_to_xx(cxw)
    assert torch.allclose(xx, torch.tensor([[0.4, 0.6], [-0.1, 0.3]]))
    assert torch.allclose(span_xx_to_cxw(xx), cxw)


def test_temporal_iou_and_giou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.2], [0.5, 1.0]])
    b = torch.tensor([[0.0, 0.3], [0.0, 1.0]])
    iou, union = temporal_iou(a, b)
    assert torch.allclose(iou, torch.tensor([[0.2 / 0.3, 0.2], [0.0, 0.5]]))
    assert torch.allclose(union, torch.tensor([[0.3, 1.0], [0.8, 1.0]]))
    giou = generalized_temporal_iou(a, b)
    # [0.5, 1] vs [0, 0.3]: IoU 0, union 0.8, hull 1 -> 0 - (1 - 0.8) / 1 = -0.2
    assert torch.allclose(giou, torch.tensor([[0.2 / 0.3, 0.2], [-0.2, 0.5]]))


def test_giou_identical_is_one_and_disjoint_is_negative() -> None:
    spans = torch.tensor([[0.1, 0.4], [0.6, 0.9]])
    assert torch.allclose(generalized_temporal_iou(spans, spans).diagonal(), torch.ones(2))
    # disjoint [0.1, 0.4] and [0.6, 0.9]: union 0.6, hull 0.8 -> -(0.8 - 0.6) / 0.8 = -0.25
    assert generalized_temporal_iou(spans[:1], spans[1:]).item() == pytest.approx(-0.25)
    far = torch.tensor([[0.0, 0.01], [0.99, 1.0]])  # tends to -1 as the gap dominates
    assert generalized_temporal_iou(far[:1], far[1:]).item() == pytest.approx(-0.98)


def test_span_ops_are_batched_and_paired_equals_diagonal() -> None:
    gen = torch.Generator().manual_seed(0)
    a = span_cxw_to_xx(torch.rand(3, 5, 2, generator=gen))  # (3, 5, 2)
    b = span_cxw_to_xx(torch.rand(3, 4, 2, generator=gen))  # (3, 4, 2)
    batched = generalized_temporal_iou(a, b)  # (3, 5, 4)
    assert batched.shape == (3, 5, 4)
    for i in range(3):
        assert torch.equal(batched[i], generalized_temporal_iou(a[i], b[i]))
    square = generalized_temporal_iou(a[0], a[1])  # (5, 5)
    assert torch.equal(paired_generalized_temporal_iou(a[0], a[1]), square.diagonal())
    half = generalized_temporal_iou(a[0].bfloat16(), b[0].bfloat16())
    assert half.dtype == torch.float32


# ------------------------------------------------------------------------------------------------ matcher


def _logits_for(fg_prob: list[float]) -> torch.Tensor:
    """(1, Q, 2) logits whose softmax foreground probabilities are `fg_prob`."""
    p = torch.tensor(fg_prob)
    return torch.stack([p.log(), (1 - p).log()], dim=-1)[None]


def test_matcher_finds_the_obvious_assignment() -> None:
    spans = torch.tensor([[[0.2, 0.1], [0.5, 0.3], [0.8, 0.1], [0.4, 0.8]]])  # (1, 4, 2)
    targets = [torch.tensor([[0.8, 0.1], [0.2, 0.1]])]  # copies of queries 2 and 0
    ((queries, tgt_idx),) = HungarianMatcher()(_logits_for([0.5] * 4), spans, targets)
    assert queries.tolist() == [0, 2] and tgt_idx.tolist() == [1, 0]
    assert queries.dtype == torch.int64


def test_matcher_cost_by_hand() -> None:
    # pred (0.5, 0.2) vs target (0.5, 0.4): L1 0.2, gIoU 0.5, p_fg 0.75 -> 10 * 0.2 - 1 * 0.5 - 4 * 0.75
    cost = HungarianMatcher().cost_matrix(
        _logits_for([0.75]), torch.tensor([[[0.5, 0.2]]]), torch.tensor([[[0.5, 0.4]]])
    )
    assert cost.shape == (1, 1, 1)
    assert cost.item() == pytest.approx(2.0 - 0.5 - 3.0)
    custom = HungarianMatcher(cost_span=1.0, cost_giou=2.0, cost_class=0.0)
    assert custom.cost_matrix(
        _logits_for([0.75]), torch.tensor([[[0.5, 0.2]]]), torch.tensor([[[0.5, 0.4]]])
    ).item() == (pytest.approx(0.2 - 1.0))


def test_matcher_class_cost_breaks_a_span_tie() -> None:
    spans = torch.tensor([[[0.5, 0.2], [0.5, 0.2]]])  # two identical queries
    ((queries, _),) = HungarianMatcher()(_logits_for([0.1, 0.9]), spans, [torch.tensor([[0.5, 0.2]])])
    assert queries.tolist() == [1]  # the confident one


def test_matcher_is_optimal_against_brute_force() -> None:
    gen = torch.Generator().manual_seed(3)
    matcher = HungarianMatcher()
    for _ in range(20):
        q, n = 5, int(torch.randint(1, 4, (), generator=gen))
        logits = torch.randn(1, q, 2, generator=gen)
        spans = torch.rand(1, q, 2, generator=gen).clamp(0.05, 0.95)
        tgt = torch.rand(n, 2, generator=gen).clamp(0.05, 0.95)
        ((rows, cols),) = matcher(logits, spans, [tgt])
        pad = tgt.new_zeros(1, n, 2) + tgt
        cost = matcher.cost_matrix(logits, spans, pad)[0]  # (Q, n)
        found = cost[rows, cols].sum().item()
        best = min(sum(cost[p[j], j].item() for j in range(n)) for p in itertools.permutations(range(q), n))
        assert found == pytest.approx(best, abs=1e-5)


def test_matcher_rows_without_targets_and_more_targets_than_queries() -> None:
    logits, spans = torch.zeros(2, 2, 2), torch.full((2, 2, 2), 0.3)
    tgt = [torch.zeros(0, 2), torch.tensor([[0.2, 0.1], [0.5, 0.1], [0.8, 0.1]])]
    (q0, t0), (q1, t1) = HungarianMatcher()(logits, spans, tgt)
    assert q0.numel() == 0 and t0.numel() == 0
    assert len(q1) == 2 and len(set(t1.tolist())) == 2  # min(Q, n) one-to-one pairs


def test_matcher_refuses_non_finite_predictions() -> None:
    spans = torch.tensor([[[float("nan"), 0.2]]])
    with pytest.raises(TrainingError, match="not finite"):
        HungarianMatcher()(torch.zeros(1, 1, 2), spans, [torch.tensor([[0.5, 0.2]])])


# ------------------------------------------------------------------------------------------- loss parts


def test_loss_parts_by_hand() -> None:
    # q0 (0.5, 0.2) -> [0.4, 0.6] matches the target (0.5, 0.4) -> [0.3, 0.7]; q1 is far away
    spans = torch.tensor([[[0.5, 0.2], [0.1, 0.05]]])
    logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, math.log(4.0)]]])  # p_fg 0.75; p_bg 0.8
    scores = torch.tensor([[0.3, 0.5, 0.9, 0.0]])
    targets = GroundingTargets(
        spans=[torch.tensor([[0.5, 0.4]])],
        saliency_pos=torch.tensor([[0, 2]]),
        saliency_neg=torch.tensor([[1, 3]]),
    )
    out = GroundingCriterion()(
        {"pred_logits": logits, "pred_spans": spans, "saliency_scores": scores}, targets
    )
    p = out.parts
    assert p["loss_span"].item() == pytest.approx((0.0 + 0.2) / 2)  # mean over (n, 2) elements
    # IoU 0.2 / 0.4 = 0.5, hull = union = 0.4 -> gIoU 0.5
    assert p["loss_giou"].item() == pytest.approx(0.5)
    # official: reduction "none" then a plain mean over B*Q = 2, the background term weighted 0.1
    label = (-math.log(0.75) + 0.1 * -math.log(0.8)) / 2
    assert p["loss_label"].item() == pytest.approx(label)
    # pairs (0 > 1): 0.2 + 0.5 - 0.3 = 0.4; (2 > 3): 0.2 + 0 - 0.9 < 0 -> 0; sum / (B*P) * 2
    assert p["loss_saliency"].item() == pytest.approx(0.4 / 2 * 2)
    assert p["class_error"].item() == 0.0
    total = 10 * 0.1 + 1 * 0.5 + 4 * label + 1 * 0.4
    assert out.total.item() == pytest.approx(total)
    assert set(p) == {"loss_span", "loss_giou", "loss_label", "class_error", "loss_saliency"}


def _random_outputs(
    gen: torch.Generator, b: int = 3, q: int = 6, nv: int = 12, layers: int = 3
) -> dict[str, Any]:
    def layer() -> dict[str, Any]:
        return {
            "pred_logits": torch.randn(b, q, 2, generator=gen).requires_grad_(),
            "pred_spans": torch.rand(b, q, 2, generator=gen).clamp(0.05, 0.95).requires_grad_(),
        }

    out = layer()
    out["saliency_scores"] = torch.randn(b, nv, generator=gen).requires_grad_()
    out["aux_outputs"] = [layer() for _ in range(layers - 1)]
    return out


def _random_targets(gen: torch.Generator, b: int = 3, nv: int = 12) -> GroundingTargets:
    spans = [torch.tensor([[0.3, 0.2]]), torch.tensor([[0.2, 0.1], [0.7, 0.3]]), torch.tensor([[0.6, 0.5]])][
        :b
    ]
    pos = torch.randint(0, nv, (b, 4), generator=gen)
    neg = torch.randint(0, nv, (b, 4), generator=gen)
    return GroundingTargets(spans=spans, saliency_pos=pos, saliency_neg=neg)


def test_aux_parts_have_suffixes_and_enter_the_total() -> None:
    gen = torch.Generator().manual_seed(0)
    outputs, targets = _random_outputs(gen), _random_targets(gen)
    criterion = GroundingCriterion()
    out = criterion(outputs, targets)
    for i in (0, 1):
        for name in ("loss_span", "loss_giou", "loss_label", "class_error"):
            assert f"{name}_{i}" in out.parts
    assert "loss_saliency_0" not in out.parts and "loss_span_2" not in out.parts
    weights = criterion.weights.weight_dict(2)
    assert "class_error" not in weights and weights["loss_span_1"] == 10.0
    expected = sum(out.parts[k] * w for k, w in weights.items())
    assert torch.allclose(out.total, expected)
    # an aux layer's parts equal what the same tensors give as a last layer
    solo = criterion({**outputs["aux_outputs"][1], "saliency_scores": outputs["saliency_scores"]}, targets)
    assert torch.equal(solo.parts["loss_giou"], out.parts["loss_giou_1"])
    no_aux = GroundingCriterion(GroundingLossWeights(aux_loss=False))(outputs, targets)
    assert not any(k.endswith("_0") for k in no_aux.parts)


def test_gradients_reach_spans_logits_saliency_and_aux_layers() -> None:
    gen = torch.Generator().manual_seed(1)
    outputs = _random_outputs(gen)
    GroundingCriterion()(outputs, _random_targets(gen)).total.backward()
    tensors = [outputs["pred_logits"], outputs["pred_spans"], outputs["saliency_scores"]]
    tensors += [t for aux in outputs["aux_outputs"] for t in aux.values()]
    for t in tensors:
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_a_few_optimiser_steps_lower_the_loss() -> None:
    gen = torch.Generator().manual_seed(2)
    raw_logits = torch.randn(3, 6, 2, generator=gen, requires_grad=True)
    raw_spans = torch.randn(3, 6, 2, generator=gen, requires_grad=True)
    saliency = torch.randn(3, 12, generator=gen, requires_grad=True)
    targets = _random_targets(gen)
    criterion = GroundingCriterion(GroundingLossWeights(aux_loss=False))
    optimiser = torch.optim.Adam([raw_logits, raw_spans, saliency], lr=0.1)
    losses = []
    for _ in range(30):
        outputs = {"pred_logits": raw_logits, "pred_spans": raw_spans.sigmoid(), "saliency_scores": saliency}
        out = criterion(outputs, targets)
        optimiser.zero_grad()
        out.total.backward()
        optimiser.step()
        losses.append(out.total.detach())
    assert losses[-1] < 0.3 * losses[0]
    assert out.parts["loss_giou"] < 0.2 and out.parts["loss_saliency"] < 0.1


def _rows(outputs: dict[str, Any], rows: slice) -> dict[str, Any]:
    """The output dict of batch rows `rows` (last layer, saliency, aux layers)."""
    part = {k: v[rows] for k, v in outputs.items() if k != "aux_outputs"}
    part["aux_outputs"] = [{k: v[rows] for k, v in aux.items()} for aux in outputs["aux_outputs"]]
    return part


def test_num_boxes_lets_parts_of_a_batch_add_up_to_the_whole_batch() -> None:
    """What several ranks compute (docs/distributed.md): rows split 3 + 1, each part's span/gIoU sums
    divided by the global matched count x its share, weighted by the loop's share."""
    gen = torch.Generator().manual_seed(5)
    outputs = _random_outputs(gen, b=4, q=3)
    spans = [torch.tensor([[0.3, 0.2]]), torch.tensor([[0.1, 0.1], [0.3, 0.1], [0.5, 0.1], [0.8, 0.2]]),
             torch.tensor([[0.2, 0.1], [0.7, 0.3]]), torch.tensor([[0.6, 0.5]])]  # fmt: skip
    targets = GroundingTargets(spans, torch.randint(0, 12, (4, 2), generator=gen),
                               torch.randint(0, 12, (4, 2), generator=gen))  # fmt: skip
    assert matched_count(spans, 3) == 1 + 3 + 2 + 1  # 4 windows, 3 queries: 3 pairs
    criterion = GroundingCriterion()
    whole = criterion(outputs, targets)
    same = criterion(outputs, targets, num_boxes=7)  # the batch's own count: the official mean
    torch.testing.assert_close(same.total, whole.total, rtol=1e-6, atol=0)

    summed: dict[str, torch.Tensor] = {}
    official: dict[str, torch.Tensor] = {}  # the parts' own means, weighted the same way
    for rank, rows in enumerate((slice(0, 3), slice(3, 4))):
        part_targets = GroundingTargets(spans[rows], targets.saliency_pos[rows], targets.saliency_neg[rows])
        share = Share(weight=len(spans[rows]) * 2 / 4, job=Dist(rank=rank, world=2))
        ours = criterion(_rows(outputs, rows), part_targets, num_boxes=share.denominator(7))
        plain = criterion(_rows(outputs, rows), part_targets)
        for name in [*whole.parts, "total"]:
            if name.startswith("class_error"):  # logged, a per-part accuracy
                continue
            value = ours.total if name == "total" else ours.parts[name]
            plain_value = plain.total if name == "total" else plain.parts[name]
            summed[name] = summed.get(name, 0) + value * share.weight / 2
            official[name] = official.get(name, 0) + plain_value * share.weight / 2
    for name, value in summed.items():
        expected = whole.total if name == "total" else whole.parts[name]
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7, msg=name)
    assert (
        abs(float((official["loss_span"] - whole.parts["loss_span"]).detach())) > 1e-3
    )  # why num_boxes exists
    with pytest.raises(InvalidValueError, match="num_boxes 0 is invalid"):
        criterion(outputs, targets, num_boxes=0)


# ------------------------------------------------------------------------------------ missing targets


def test_rows_without_ground_truth_are_all_background() -> None:
    gen = torch.Generator().manual_seed(4)
    outputs = _random_outputs(gen, b=2, layers=1)
    targets = GroundingTargets(spans=[torch.zeros(0, 2), torch.tensor([[0.5, 0.2]])])
    out = GroundingCriterion()(outputs, targets)
    assert all(torch.isfinite(v) for v in out.parts.values())
    assert out.parts["loss_saliency"].item() == 0.0  # no saliency labels: 0, as officially

    empty = GroundingTargets(spans=[torch.zeros(0, 2), torch.zeros(0, 2)])
    out = GroundingCriterion()(outputs, empty)
    assert out.parts["loss_span"].item() == 0.0 and out.parts["loss_giou"].item() == 0.0
    # every query is background, weighted eos_coef: mean of 0.1 * -log p_bg
    p_bg = outputs["pred_logits"].detach().softmax(-1)[..., 1]
    assert out.parts["loss_label"].item() == pytest.approx((0.1 * -p_bg.log()).mean().item(), rel=1e-5)
    out.total.backward()
    assert outputs["pred_logits"].grad is not None and outputs["pred_logits"].grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------- weights


def test_official_defaults_match_the_checkpoint_options(shared_data: Path) -> None:
    opts = json.loads((shared_data / "moment_detr" / "clip_only_opt.json").read_text())
    assert GroundingLossWeights.from_official_options(opts) == GroundingLossWeights()
    assert GroundingLossWeights.from_official_options(argparse.Namespace(**opts)) == GroundingLossWeights()


def test_weights_from_partial_options_and_refusals() -> None:
    w = GroundingLossWeights.from_official_options({"eos_coef": 0.2, "lr": 1e-4, "aux_loss": False})
    assert w.eos_coef == 0.2 and not w.aux_loss and w.span_loss_coef == 10.0
    assert GroundingCriterion(w).empty_weight.tolist() == pytest.approx([1.0, 0.2])
    with pytest.raises(InvalidValueError, match="span_loss_type 'ce'"):
        GroundingLossWeights.from_official_options({"span_loss_type": "ce"})
    with pytest.raises(InvalidValueError, match="contrastive_align_loss"):
        GroundingLossWeights.from_official_options({"contrastive_align_loss": True})
    with pytest.raises(InvalidValueError, match="eos_coef -1"):
        GroundingLossWeights(eos_coef=-1)
    with pytest.raises(InvalidValueError, match="aux_loss"):
        GroundingLossWeights(aux_loss="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="all 0"):
        GroundingLossWeights(set_cost_span=0, set_cost_giou=0, set_cost_class=0)


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (GroundingTargets(spans=[torch.tensor([[0.5, 0.2]])]), "1 rows: expected one per batch row"),
        (GroundingTargets(spans=[torch.tensor([[0.5, 0.0]])] * 2), r"spans\[0\] holds the span"),
        (
            GroundingTargets(spans=[torch.tensor([[0.5, 0.1]]), torch.tensor([[0.5, 0.2, 0.1]])]),
            "expected \\(n, 2\\)",
        ),
        (
            GroundingTargets(
                [torch.tensor([[0.5, 0.1]])] * 2, torch.tensor([[0], [12]]), torch.tensor([[1], [2]])
            ),
            r"\[0, 11\]",
        ),
        (
            GroundingTargets(
                [torch.tensor([[0.5, 0.1]])] * 2, torch.tensor([[-1], [0]]), torch.tensor([[1], [2]])
            ),
            r"span \[-1, 2\]",
        ),
        (GroundingTargets([torch.tensor([[0.5, 0.1]])] * 2, torch.tensor([[0], [1]]), None), "together"),
    ],
)
def test_bad_targets_raise_one_clear_error(targets: GroundingTargets, message: str) -> None:
    outputs = _random_outputs(torch.Generator().manual_seed(5), b=2, layers=1)
    with pytest.raises(InvalidValueError, match=message):
        GroundingCriterion()(outputs, targets)


def test_bad_outputs_raise_one_clear_error() -> None:
    targets = GroundingTargets(spans=[torch.tensor([[0.5, 0.1]])])
    with pytest.raises(InvalidValueError, match=r"pred_spans'\] is NoneType"):
        GroundingCriterion()({"pred_logits": torch.zeros(1, 2, 2)}, targets)
    with pytest.raises(InvalidValueError, match=r"aux_outputs\[0\] has shapes"):
        outputs: dict[str, Any] = {
            "pred_logits": torch.zeros(1, 2, 2),
            "pred_spans": torch.full((1, 2, 2), 0.5),
        }
        outputs["aux_outputs"] = [
            {"pred_logits": torch.zeros(1, 3, 2), "pred_spans": torch.full((1, 3, 2), 0.5)}
        ]
        GroundingCriterion()(outputs, targets)
