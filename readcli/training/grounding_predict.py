"""Moment-DETR outputs -> official QVHighlights prediction rows, and temporal NMS.

Dimension letters: B batch, Q queries (moment slots), N_V video clips.

Mirrors the official `inference.compute_mr_results`, `PostProcessorDETR` and `utils/temporal_nms.py`
value for value: score = softmax foreground probability; spans (center, width) -> (start, end) times the
video's duration; windows sorted by score; every number rounded to 4 decimals; windows clipped to
[min_ts_val, max_ts_val] and rounded to multiples of clip_length; optional NMS after cutting to
max_before_nms; saliency scores cast to float16 and cut to the valid clips. See docs/grounding_loss.md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from readcli.errors import InvalidValueError
from readcli.training.span_ops import span_cxw_to_xx

__all__ = ["PredictionSettings", "QueryMeta", "predictions_from_outputs", "temporal_nms"]

FOREGROUND = 0  # class index of the foreground logit, as in the official model


@dataclass(frozen=True)
class QueryMeta:
    """What a prediction row carries about its query; duration in seconds scales the spans."""

    qid: int | str
    query: str
    vid: str
    duration: float


@dataclass(frozen=True)
class PredictionSettings:
    """Post-processing settings; defaults are those of the official QVHighlights evaluation."""

    clip_length: float = 2.0  # windows are rounded to multiples of this (seconds)
    min_ts_val: float = 0.0
    max_ts_val: float | None = 150.0  # None: clip to each video's own duration
    sort_results: bool = True
    nms_thd: float = -1.0  # -1: no NMS; else an IoU threshold in [0, 1]
    max_before_nms: int = 10
    max_after_nms: int = 10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_length) and self.clip_length > 0):
            raise InvalidValueError(f"clip_length {self.clip_length} is invalid: use seconds > 0")
        upper = math.inf if self.max_ts_val is None else self.max_ts_val
        if not (math.isfinite(self.min_ts_val) and self.min_ts_val < upper):
            raise InvalidValueError(
                f"min_ts_val {self.min_ts_val} / max_ts_val {self.max_ts_val} are invalid: use min < max"
            )
        if self.nms_thd != -1 and not 0 <= self.nms_thd <= 1:
            raise InvalidValueError(f"nms_thd {self.nms_thd} is invalid: use -1 (off) or an IoU in [0, 1]")
        for name in ("max_before_nms", "max_after_nms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"{name} {value!r} is invalid: use an integer >= 1")

    @classmethod
    def from_official_options(cls, options: Mapping[str, Any] | argparse.Namespace) -> PredictionSettings:
        """Read nms_thd, max_before_nms, max_after_nms, no_sort_results and clip_length from official opts."""
        opts = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
        default = cls()
        return cls(
            clip_length=float(opts.get("clip_length", default.clip_length)),
            sort_results=not opts.get("no_sort_results", not default.sort_results),
            nms_thd=float(opts.get("nms_thd", default.nms_thd)),
            max_before_nms=opts.get("max_before_nms", default.max_before_nms),
            max_after_nms=opts.get("max_after_nms", default.max_after_nms),
        )


def predictions_from_outputs(
    outputs: Mapping[str, Any],
    video_mask: torch.Tensor,
    metas: Sequence[QueryMeta],
    settings: PredictionSettings | None = None,
) -> list[dict[str, Any]]:
    """One official prediction row per batch row, from the model's output dict (see module docstring).

    video_mask: (B, N_V), True/1 on valid clips, which must come first in each row (padding at the end).
    """
    settings = settings if settings is not None else PredictionSettings()
    logits, spans, saliency = _checked_outputs(outputs, batch=len(metas))
    lengths = _valid_lengths(video_mask, saliency.shape)  # B ints
    durations = [float(m.duration) for m in metas]
    bad = [d for d in durations if not (math.isfinite(d) and d > 0)]
    if bad:
        raise InvalidValueError(f"video duration {bad[0]} is invalid: use seconds > 0")
    with torch.no_grad():
        scores = logits.float().softmax(-1)[..., FOREGROUND]  # (B, Q)
        scale = torch.tensor(durations, dtype=torch.float32, device=spans.device)  # (B,)
        windows = span_cxw_to_xx(spans.float()) * scale[:, None, None]  # (B, Q, 2) seconds
        ranked = torch.cat([windows, scores[..., None]], dim=-1).cpu().tolist()  # (B, Q, 3)
        saliency_rows = saliency.detach().half().cpu().tolist()  # (B, N_V); official: `.half()`
    ranked = _drop_padding_proposals(ranked, outputs.get("proposal_mask"))
    if settings.sort_results:
        ranked = [sorted(rows, key=lambda r: r[2], reverse=True) for rows in ranked]
    ranked = [[[_round4(v) for v in row] for row in rows] for rows in ranked]
    if len({len(rows) for rows in ranked}) <= 1:
        ranked = _clip_and_round(ranked, durations, settings)
    else:  # rows of different lengths (padding proposals dropped): one row at a time
        ranked = [
            _clip_and_round([rows], [d], settings)[0] if rows else []
            for rows, d in zip(ranked, durations, strict=True)
        ]
    if settings.nms_thd != -1:
        ranked = [
            temporal_nms(rows[: settings.max_before_nms], settings.nms_thd, settings.max_after_nms)
            for rows in ranked
        ]
    return [
        {
            "qid": meta.qid,
            "query": meta.query,
            "vid": meta.vid,
            "pred_relevant_windows": rows,
            "pred_saliency_scores": sal[:n],
        }
        for meta, rows, sal, n in zip(metas, ranked, saliency_rows, lengths, strict=True)
    ]


def temporal_nms(
    windows: Sequence[Sequence[float]], iou_threshold: float, max_after_nms: int = 100
) -> list[list[float]]:
    """Greedy NMS over [start, end, score] rows: keep the best, drop rows with IoU > threshold with it.

    Returns at most max_after_nms rows by descending score (ties keep input order); the official
    `utils/temporal_nms.py` semantics, including IoU = 0 when both windows have zero length.
    """
    if not 0 <= iou_threshold <= 1:
        raise InvalidValueError(f"NMS IoU threshold {iou_threshold} is invalid: use a value in [0, 1]")
    if isinstance(max_after_nms, bool) or not isinstance(max_after_nms, int) or max_after_nms < 1:
        raise InvalidValueError(f"max_after_nms {max_after_nms!r} is invalid: use an integer >= 1")
    rows = [list(w) for w in windows]
    if any(len(r) != 3 for r in rows):
        bad = next(r for r in rows if len(r) != 3)
        raise InvalidValueError(f"NMS window {bad} is invalid: expected [start, end, score]")
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), 3)  # (n, 3)
    if not np.isfinite(table).all():
        raise InvalidValueError("NMS windows hold NaN or inf: expected finite [start, end, score] rows")
    order = np.argsort(-table[:, 2], kind="stable")  # (n,) best first, ties in input order
    keep: list[int] = []
    while order.size > 0 and len(keep) < max_after_nms:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        st, ed = table[rest, 0], table[rest, 1]  # (r,)
        inter = np.maximum(0.0, np.minimum(ed, table[best, 1]) - np.maximum(st, table[best, 0]))  # (r,)
        # the hull equals the union whenever the windows overlap, and inter = 0 otherwise
        hull = np.maximum(ed, table[best, 1]) - np.minimum(st, table[best, 0])  # (r,)
        iou = np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)  # (r,)
        order = rest[iou <= iou_threshold]
    return [rows[i] for i in keep]


def _drop_padding_proposals(ranked: list[list[list[float]]], mask: object) -> list[list[list[float]]]:
    """Keep only the proposals `proposal_mask` (B, Q) marks valid (UMT: one per real clip), if given."""
    if mask is None:
        return ranked
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] != len(ranked):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InvalidValueError(f"outputs['proposal_mask'] is {got}: expected a (B, Q) bool tensor")
    keep = mask.detach().bool().cpu().tolist()  # (B, Q)
    return [
        [row for row, k in zip(rows, ks, strict=True) if k] for rows, ks in zip(ranked, keep, strict=True)
    ]


def _round4(value: float) -> float:
    """The official `float(f"{e:.4f}")`: correctly rounded decimal, unlike np.round's scale-and-rint."""
    return float(f"{value:.4f}")


def _clip_and_round(
    ranked: list[list[list[float]]], durations: list[float], settings: PredictionSettings
) -> list[list[list[float]]]:
    """PostProcessorDETR's clip_ts and round_multiple, in float32 like the official tensors."""
    table = torch.tensor(ranked, dtype=torch.float32)  # (B, Q, 3)
    if settings.max_ts_val is None:
        upper = torch.tensor(durations, dtype=torch.float32)[:, None, None]  # (B, 1, 1)
    else:
        upper = torch.full((1, 1, 1), settings.max_ts_val, dtype=torch.float32)
    lower = torch.full_like(upper, settings.min_ts_val)
    windows = torch.minimum(torch.maximum(table[..., :2], lower), upper)  # (B, Q, 2)
    windows = torch.round(windows / settings.clip_length) * settings.clip_length  # (B, Q, 2)
    out = torch.cat([windows, table[..., 2:]], dim=-1).tolist()  # (B, Q, 3)
    return [[[st, ed, _round4(score)] for st, ed, score in rows] for rows in out]


def _checked_outputs(
    outputs: Mapping[str, Any], batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pred_logits (B, Q, 2), pred_spans (B, Q, 2), saliency_scores (B, N_V) ((N_V,) is taken for B=1)."""
    found: list[torch.Tensor] = []
    for name, want in (
        ("pred_logits", (batch, -1, 2)),
        ("pred_spans", (batch, -1, 2)),
        ("saliency_scores", (batch, -1)),
    ):
        value = outputs.get(name)
        if isinstance(value, torch.Tensor) and name == "saliency_scores" and value.dim() == 1 and batch == 1:
            value = value[None]  # the official model squeezes (1, N_V) to (N_V,)
        if not isinstance(value, torch.Tensor) or not _shape_fits(value.shape, want):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            text = "(B, Q, 2)" if len(want) == 3 else "(B, N_V)"
            raise InvalidValueError(
                f"outputs['{name}'] is {got}: expected a tensor of shape {text} with B={batch}"
            )
        found.append(value)
    logits, spans, saliency = found
    if logits.shape != spans.shape:
        raise InvalidValueError(
            f"pred_logits {tuple(logits.shape)} and pred_spans {tuple(spans.shape)} differ"
        )
    return logits, spans, saliency


def _shape_fits(shape: torch.Size, want: tuple[int, ...]) -> bool:
    """Whether `shape` matches `want`, where -1 stands for any size."""
    return len(shape) == len(want) and all(w in (-1, s) for s, w in zip(shape, want, strict=True))


def _valid_lengths(video_mask: torch.Tensor, shape: torch.Size) -> list[int]:
    """Valid clips per row of a (B, N_V) mask whose valid clips come first; anything else is refused."""
    if tuple(video_mask.shape) != tuple(shape):
        raise InvalidValueError(
            f"video_mask has shape {tuple(video_mask.shape)}: expected {tuple(shape)} (as saliency_scores)"
        )
    mask = video_mask.detach().cpu().bool()  # (B, N_V)
    lengths = mask.sum(1)  # (B,)
    prefix = torch.arange(mask.shape[1])[None, :] < lengths[:, None]  # (B, N_V)
    if not torch.equal(mask, prefix):
        row = int((mask != prefix).any(1).nonzero()[0, 0])
        raise InvalidValueError(
            f"video_mask row {row} has padding before valid clips: expected valid clips first, padding last"
        )
    return [int(n) for n in lengths.tolist()]
