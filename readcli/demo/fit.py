"""The demo's lean training loop and its per-query grounding scores.

`fit` is the shared loop's inner part (readcli/training/loop.py: the same `Stepper`, the same seeded
epoch order, AdamW over the trainable parameters, gradient clipping) without what a benchmark run
does not need: no evaluation after every epoch, no checkpoints. The demo scores one model once, at
the end, on the split the protocol asks for.

`query_scores` gives the QVHighlights moment metrics per query (AP averaged over IoU 0.5:0.05:0.95,
R1@0.5, R1@0.7, in percent), whose means are the official `MR-full-*` numbers; the paired bootstrap
resamples them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from readcli.evaluation.moment_metrics import (
    IOU_THRESHOLDS,
    MAX_PRED_WINDOWS,
    detection_ap,
    pad_windows,
    recall_at_one,
)
from readcli.seeding import seed_everything
from readcli.training.distributed import Dist
from readcli.training.loop import TrainSettings, TrainTask, epoch_seed
from readcli.training.step import Stepper

METRICS: tuple[str, ...] = ("mAP", "R1@0.5", "R1@0.7")  # the primary (selection) metric first


def fit(model: torch.nn.Module, task: TrainTask, settings: TrainSettings) -> None:
    """Train `model`'s trainable parameters on `task.train` for `settings.epochs` epochs, on the CPU."""
    device = torch.device("cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    stepper = Stepper(model, task, optimizer, params, "off", settings.grad_clip, device, Dist())
    for epoch in range(settings.epochs):
        seed = epoch_seed(settings.seed, epoch)
        seed_everything(seed)  # as the shared loop: an epoch's order depends on the seed and epoch only
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for step, batch in enumerate(task.train_batches(settings.batch_size, generator)):
            stepper.step(batch, 1.0, epoch, step)
    model.eval()


def query_scores(
    predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """Per-query mAP, R1@0.5 and R1@0.7 (percent), each (Q,), in the ground truth's row order."""
    by_qid = {row["qid"]: row for row in predictions}
    pred = [
        np.asarray(by_qid[row["qid"]]["pred_relevant_windows"], dtype=float)[:MAX_PRED_WINDOWS]
        for row in ground_truth
    ]
    truth = [np.asarray(row["relevant_windows"], dtype=float) for row in ground_truth]
    thresholds = np.asarray(IOU_THRESHOLDS)  # (T,)
    windows, window_mask = pad_windows(pred, 3)  # (Q, P, 3)
    gt, gt_mask = pad_windows(truth, 2)  # (Q, G, 2)
    ap = detection_ap(windows, window_mask, gt, gt_mask, thresholds)  # (Q, T)
    hits = recall_at_one(windows[:, 0, :2], gt, gt_mask, thresholds)  # (Q, T)
    hits &= window_mask[:, :1]  # a query without a predicted window scores no hit
    at = {t: i for i, t in enumerate(IOU_THRESHOLDS)}
    return {
        "mAP": 100.0 * ap.mean(-1),
        "R1@0.5": 100.0 * hits[:, at[0.5]].astype(float),
        "R1@0.7": 100.0 * hits[:, at[0.7]].astype(float),
    }
