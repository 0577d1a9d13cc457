"""Moment-DETR's training losses: Hungarian matching, span L1 + gIoU, classification, saliency ranking.

Dimension letters: B batch, Q queries (moment slots), N_V video clips, P saliency pairs per query,
n_i ground-truth spans of row i, n matched pairs over the batch.

The arithmetic follows the official jayleicn/moment_detr `SetCriterion` and `HungarianMatcher` (l1 span
type, no contrastive alignment, as in the public checkpoints): the criterion yields *unweighted* named
parts (`loss_span`, `loss_giou`, `loss_label`, `class_error`, `loss_saliency`, and `loss_span_0`, ... for
the auxiliary decoder layers) and the weight dict sums them into the total. Choices where the official
code is silent or fails are documented in docs/grounding_loss.md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from readcli.errors import InvalidValueError, TrainingError
from readcli.training.span_ops import (
    generalized_temporal_iou,
    paired_generalized_temporal_iou,
    span_cxw_to_xx,
)

__all__ = [
    "GroundingCriterion",
    "GroundingLossOutput",
    "GroundingLossWeights",
    "GroundingTargets",
    "HungarianMatcher",
    "matched_count",
]

FOREGROUND, BACKGROUND = 0, 1  # class indices of `pred_logits`, as in the official model
_MAIN_PARTS = ("loss_span", "loss_giou", "loss_label")  # weighted in every decoder layer


@dataclass(frozen=True)
class GroundingLossWeights:
    """Matching costs, loss weights and the saliency margin; defaults are the official ones."""

    set_cost_span: float = 10.0
    set_cost_giou: float = 1.0
    set_cost_class: float = 4.0
    span_loss_coef: float = 10.0
    giou_loss_coef: float = 1.0
    label_loss_coef: float = 4.0
    eos_coef: float = 0.1  # weight of the background ("no moment") class in the label loss
    lw_saliency: float = 1.0
    saliency_margin: float = 0.2
    aux_loss: bool = True  # also supervise every intermediate decoder layer

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "aux_loss":
                if not isinstance(value, bool):
                    raise InvalidValueError(f"aux_loss {value!r} is invalid: use true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidValueError(f"{f.name} {value!r} is invalid: use a finite number")
            elif value < 0 and f.name != "saliency_margin":
                raise InvalidValueError(f"{f.name} {value!r} is invalid: use a number >= 0")
        if self.set_cost_span == self.set_cost_giou == self.set_cost_class == 0:
            raise InvalidValueError("set_cost_span, set_cost_giou and set_cost_class are all 0: set one > 0")

    @classmethod
    def from_official_options(cls, options: Mapping[str, Any] | argparse.Namespace) -> GroundingLossWeights:
        """Read the weights from an official `opt.json` dict (or the checkpoint's Namespace).

        Other official keys are ignored; missing weight keys keep the official defaults. Options this
        implementation does not support (span_loss_type "ce", contrastive alignment) are refused.
        """
        opts = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
        span_type = opts.get("span_loss_type", "l1")
        if span_type != "l1":
            raise InvalidValueError(f"span_loss_type {span_type!r} is not supported: only 'l1' is")
        if opts.get("contrastive_align_loss", False):
            raise InvalidValueError("contrastive_align_loss true is not supported: only false is")
        return cls(**{f.name: opts[f.name] for f in fields(cls) if f.name in opts})

    def weight_dict(self, num_aux_layers: int) -> dict[str, float]:
        """Weight of each named loss part; aux parts get the main weights, saliency is last-layer only."""
        main = {
            "loss_span": self.span_loss_coef,
            "loss_giou": self.giou_loss_coef,
            "loss_label": self.label_loss_coef,
        }
        weights = {**main, "loss_saliency": self.lw_saliency}
        if self.aux_loss:
            for i in range(num_aux_layers):
                weights.update({f"{k}_{i}": v for k, v in main.items()})
        return weights


@dataclass(frozen=True)
class GroundingTargets:
    """Ground truth of a batch: spans per row in normalised (center, width), saliency clip pairs.

    saliency_pos/neg: (B, P) clip indices; the loss asks score[pos] > score[neg] + margin pairwise.
    Leave both None for data without saliency labels (the saliency part is then 0, as officially).
    """

    spans: Sequence[torch.Tensor]  # B tensors of (n_i, 2); n_i = 0 is allowed (no moment)
    saliency_pos: torch.Tensor | None = None  # (B, P) long
    saliency_neg: torch.Tensor | None = None  # (B, P) long


@dataclass(frozen=True)
class GroundingLossOutput:
    """The weighted total to differentiate and the unweighted named parts (for logging)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


Matching = list[tuple[torch.Tensor, torch.Tensor]]  # per row: (query indices, target indices), int64


class HungarianMatcher:
    """One-to-one assignment of queries to ground-truth spans minimising the official matching cost.

    cost = set_cost_span * L1(cxw) - set_cost_giou * gIoU(xx) - set_cost_class * p(foreground);
    solved per row with scipy's `linear_sum_assignment`, without autograd.
    """

    def __init__(self, *, cost_span: float = 10.0, cost_giou: float = 1.0, cost_class: float = 4.0) -> None:
        if cost_span == cost_giou == cost_class == 0:
            raise InvalidValueError("cost_span, cost_giou and cost_class are all 0: set one > 0")
        self.cost_span, self.cost_giou, self.cost_class = cost_span, cost_giou, cost_class

    @classmethod
    def from_weights(cls, weights: GroundingLossWeights) -> HungarianMatcher:
        return cls(
            cost_span=weights.set_cost_span,
            cost_giou=weights.set_cost_giou,
            cost_class=weights.set_cost_class,
        )

    @torch.no_grad()
    def cost_matrix(
        self, pred_logits: torch.Tensor, pred_spans: torch.Tensor, tgt: torch.Tensor
    ) -> torch.Tensor:
        """Matching cost of every query against every (padded) target: (B, Q, n_max)."""
        fg_prob = pred_logits.float().softmax(-1)[..., FOREGROUND]  # (B, Q)
        spans = pred_spans.float()  # (B, Q, 2)
        cost_span = (spans[:, :, None, :] - tgt[:, None, :, :]).abs().sum(-1)  # (B, Q, n_max)
        cost_giou = -generalized_temporal_iou(span_cxw_to_xx(spans), span_cxw_to_xx(tgt))  # (B, Q, n_max)
        cost_class = -fg_prob[:, :, None].expand_as(cost_span)  # (B, Q, n_max)
        return self.cost_span * cost_span + self.cost_giou * cost_giou + self.cost_class * cost_class

    def __call__(
        self, pred_logits: torch.Tensor, pred_spans: torch.Tensor, tgt_spans: Sequence[torch.Tensor]
    ) -> Matching:
        """Match (B, Q, 2) logits and (B, Q, 2) cxw spans to B target sets (n_i, 2); see `Matching`."""
        device = pred_spans.device
        sizes = [len(t) for t in tgt_spans]
        n_max = max(sizes, default=0)
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        if n_max == 0:
            return [(empty, empty) for _ in sizes]
        # pad with a harmless (0.5, 0.5) span; padded columns are cut off before solving
        rows_f32 = [torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1, 2) for t in tgt_spans]
        tgt = pad_sequence(rows_f32, batch_first=True, padding_value=0.5)  # (B, n_max, 2)
        cost = self.cost_matrix(pred_logits, pred_spans, tgt).cpu().numpy()  # (B, Q, n_max)
        matching: Matching = []
        for i, n_i in enumerate(sizes):
            block = cost[i, :, :n_i]  # (Q, n_i)
            if not np.isfinite(block).all():
                raise TrainingError(
                    f"the matching cost of batch row {i} is not finite: the model's pred_logits or "
                    "pred_spans contain NaN or inf; lower the learning rate or check the input features"
                )
            rows, cols = linear_sum_assignment(block)
            matching.append((torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)))
        return matching


class GroundingCriterion(nn.Module):
    """Moment-DETR's SetCriterion (spans, labels, saliency, aux layers) returning parts and total."""

    empty_weight: torch.Tensor

    def __init__(self, weights: GroundingLossWeights | None = None) -> None:
        super().__init__()
        self.weights = weights if weights is not None else GroundingLossWeights()
        self.matcher = HungarianMatcher.from_weights(self.weights)
        class_weight = torch.ones(2)
        class_weight[BACKGROUND] = self.weights.eos_coef
        self.register_buffer("empty_weight", class_weight, persistent=False)

    def forward(
        self, outputs: Mapping[str, Any], targets: GroundingTargets, num_boxes: float | None = None
    ) -> GroundingLossOutput:
        """Loss of the official model output dict against `targets`; see the module docstring.

        num_boxes: None (official) averages the span and gIoU parts over this batch's matched pairs;
        a number divides their sums by it instead, as DETR's `num_boxes` does, so that a loss computed
        in parts (one per rank) can add up to the loss of the whole batch (docs/distributed.md).
        """
        if num_boxes is not None and not (math.isfinite(num_boxes) and num_boxes > 0):
            raise InvalidValueError(f"num_boxes {num_boxes!r} is invalid: use a finite number > 0 or None")
        logits, spans = _layer_outputs(outputs, "outputs")
        tgt_spans = _checked_spans(targets.spans, batch=logits.shape[0], device=spans.device)
        parts = self._set_losses(logits, spans, tgt_spans, suffix="", num_boxes=num_boxes)
        parts["loss_saliency"] = self._saliency_loss(outputs, targets, batch=logits.shape[0])
        aux = list(outputs.get("aux_outputs") or []) if self.weights.aux_loss else []
        for i, aux_out in enumerate(aux):
            aux_logits, aux_spans = _layer_outputs(aux_out, f"aux_outputs[{i}]")
            if aux_logits.shape != logits.shape or aux_spans.shape != spans.shape:
                raise InvalidValueError(
                    f"aux_outputs[{i}] has shapes {tuple(aux_logits.shape)}/{tuple(aux_spans.shape)}: "
                    f"expected those of the last layer, {tuple(logits.shape)}/{tuple(spans.shape)}"
                )
            parts.update(self._set_losses(aux_logits, aux_spans, tgt_spans, f"_{i}", num_boxes))
        weight_dict = self.weights.weight_dict(len(aux))
        total = sum(
            (parts[k] * weight_dict[k] for k in parts if k in weight_dict),
            spans.new_zeros((), dtype=torch.float32),
        )
        return GroundingLossOutput(total=total, parts=parts)

    def _set_losses(
        self,
        logits: torch.Tensor,
        spans: torch.Tensor,
        tgt_spans: list[torch.Tensor],
        suffix: str,
        num_boxes: float | None,
    ) -> dict[str, torch.Tensor]:
        """Match one decoder layer's queries, then its span L1, gIoU, label loss and class error."""
        matching = self.matcher(logits, spans, tgt_spans)
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(matching)])  # (n,)
        query_idx = torch.cat([src for src, _ in matching])  # (n,)
        matched = spans.float()[batch_idx, query_idx]  # (n, 2)
        target = torch.cat([t[j] for t, (_, j) in zip(tgt_spans, matching, strict=True)])  # (n, 2)
        logits = logits.float()  # (B, Q, 2)
        if len(target) > 0:
            l1 = F.l1_loss(matched, target, reduction="none")  # (n, 2)
            giou = paired_generalized_temporal_iou(span_cxw_to_xx(matched), span_cxw_to_xx(target))  # (n,)
            if num_boxes is None:  # the official means, kept as they are for bit-for-bit parity
                loss_span, loss_giou = l1.mean(), (1 - giou).mean()
            else:  # sums over the given count (2 coordinates per box, as the official mean has)
                loss_span, loss_giou = l1.sum() / (2 * num_boxes), (1 - giou).sum() / num_boxes
            with torch.no_grad():
                hits = (logits[batch_idx, query_idx].argmax(-1) == FOREGROUND).float().sum()
            class_error = 100 - hits * (100.0 / len(target))  # the official `accuracy` arithmetic
        else:  # no ground truth anywhere in the batch: nothing to regress; keep the graph connected
            loss_span = loss_giou = spans.float().sum() * 0
            class_error = logits.new_zeros(())
        classes = torch.full(logits.shape[:2], BACKGROUND, dtype=torch.int64, device=logits.device)  # (B, Q)
        classes[batch_idx, query_idx] = FOREGROUND
        class_weight = self.empty_weight.to(device=logits.device, dtype=logits.dtype)
        # reduction "none" then mean, as officially: a plain mean over B*Q, not the weight-normalised mean
        loss_label = F.cross_entropy(logits.transpose(1, 2), classes, class_weight, reduction="none").mean()
        named = {
            "loss_span": loss_span,
            "loss_giou": loss_giou,
            "loss_label": loss_label,
            "class_error": class_error,
        }
        return {k + suffix: v for k, v in named.items()}

    def _saliency_loss(
        self, outputs: Mapping[str, Any], targets: GroundingTargets, batch: int
    ) -> torch.Tensor:
        """Pairwise margin ranking, positive clip above negative clip, over the last layer only."""
        pos, neg = targets.saliency_pos, targets.saliency_neg
        if pos is None and neg is None:
            return outputs["pred_spans"].new_zeros((), dtype=torch.float32)
        scores = outputs.get("saliency_scores")
        if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != batch:
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise InvalidValueError(
                f"outputs['saliency_scores'] is {got}: expected a tensor of shape (B={batch}, N_V)"
            )
        pos, neg = _checked_pairs(pos, neg, batch=batch, num_clips=scores.shape[1], device=scores.device)
        scores = scores.float()  # (B, N_V)
        # no video mask, as officially: the pairs are sampled among valid clips and are checked above
        pos_scores = scores.gather(1, pos)  # (B, P)
        neg_scores = scores.gather(1, neg)  # (B, P)
        hinge = (self.weights.saliency_margin + neg_scores - pos_scores).clamp(min=0)  # (B, P)
        return hinge.sum() / (pos.shape[0] * pos.shape[1]) * 2  # "* 2 to keep the loss the same scale"


def matched_count(spans: Sequence[torch.Tensor], num_queries: int) -> int:
    """How many (query, span) pairs the matcher makes: min(Q, n_i) per row (a one-to-one assignment
    of a (Q, n_i) cost matrix), known before matching; the count `num_boxes` generalises."""
    return sum(min(num_queries, len(t)) for t in spans)


def _layer_outputs(outputs: Mapping[str, Any], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, Q, 2) logits and (B, Q, 2) cxw spans of one decoder layer's output dict."""
    found = []
    for name in ("pred_logits", "pred_spans"):
        value = outputs.get(name)
        if not isinstance(value, torch.Tensor) or value.dim() != 3 or value.shape[-1] != 2:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InvalidValueError(f"{where}['{name}'] is {got}: expected a tensor of shape (B, Q, 2)")
        found.append(value)
    logits, spans = found
    if logits.shape != spans.shape:
        raise InvalidValueError(
            f"{where}: pred_logits {tuple(logits.shape)} and pred_spans {tuple(spans.shape)} differ in (B, Q)"
        )
    return logits, spans


def _checked_spans(spans: Sequence[torch.Tensor], batch: int, device: torch.device) -> list[torch.Tensor]:
    """Target spans as float32 on `device`, refusing non-finite spans and widths <= 0 (gIoU is 0/0)."""
    if batch == 0:
        raise InvalidValueError("the batch is empty (B = 0): expected at least one row")
    if len(spans) != batch:
        raise InvalidValueError(f"targets.spans has {len(spans)} rows: expected one per batch row ({batch})")
    out = []
    for i, t in enumerate(spans):
        t = torch.as_tensor(t).to(device=device, dtype=torch.float32)
        if t.numel() == 0:
            t = t.reshape(0, 2)
        if t.dim() != 2 or t.shape[1] != 2:
            raise InvalidValueError(
                f"targets.spans[{i}] has shape {tuple(t.shape)}: expected (n, 2) (center, width)"
            )
        out.append(t)
    flat = torch.cat(out)  # (sum n_i, 2)
    bad = ~torch.isfinite(flat).all(-1) | (flat[:, 1] <= 0)  # (sum n_i,)
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        row = int(np.searchsorted(np.cumsum([len(t) for t in out]), k, side="right"))
        raise InvalidValueError(
            f"targets.spans[{row}] holds the span {flat[k].tolist()}: expected a finite normalised "
            "(center, width) with width > 0"
        )
    return out


def _checked_pairs(
    pos: torch.Tensor | None, neg: torch.Tensor | None, batch: int, num_clips: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Saliency pair indices as int64 on `device`, each in [0, N_V); (B, P) both, P >= 1."""
    if pos is None or neg is None:
        raise InvalidValueError(
            "targets: saliency_pos and saliency_neg must be given together (or both None)"
        )
    if pos.shape != neg.shape or pos.dim() != 2 or pos.shape[0] != batch or pos.shape[1] == 0:
        raise InvalidValueError(
            f"saliency_pos {tuple(pos.shape)} / saliency_neg {tuple(neg.shape)}: "
            f"expected equal shapes (B={batch}, P>=1)"
        )
    if pos.is_floating_point() or neg.is_floating_point():
        raise InvalidValueError(
            f"saliency pairs have dtype {pos.dtype}/{neg.dtype}: expected integer clip indices"
        )
    pos, neg = pos.to(device=device, dtype=torch.int64), neg.to(device=device, dtype=torch.int64)
    both = torch.cat([pos, neg], dim=1)  # (B, 2P)
    lo, hi = both.aminmax()
    if int(lo) < 0 or int(hi) >= num_clips:
        raise InvalidValueError(
            f"saliency pair indices span [{int(lo)}, {int(hi)}]: "
            f"expected clip indices in [0, {num_clips - 1}]"
        )
    return pos, neg
