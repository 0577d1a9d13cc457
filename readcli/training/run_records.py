"""The schemas of a run folder's JSON records (docs/training.md, "The run directory").

One `readcli.records.Record` per kind: `run.json` (the request), a checkpoint's `state.json`,
`metrics.json` and a line of `train_log.jsonl`. They check types (a string is never a count, a
bool never a number, every number finite or null); the ranges that depend on the rest of the folder
(epochs_done against the run's epochs, the history's length, ...) are checked in
`readcli.training.run_folder`, which names the file and what is valid.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, Strict

from readcli.records import Record
from readcli.records.validate import Count, Finite, Text

Flag = Annotated[bool, Strict()]
Integer = Annotated[int, Strict()]
Epoch = Annotated[int, Strict(), Field(ge=1)]
# a metric: a finite number, or null (a NaN metric, e.g. over an empty bucket, is written as null)
Metric = Finite | None


class HistoryRow(Record):
    """One epoch's evaluation: its number and its metrics (any names, finite numbers or null)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Metric]

    epoch: Epoch


class StateRecord(Record):
    """checkpoints/epoch-NNNN/state.json: the loop's state after NNNN epochs (train_checkpoint.py)."""

    epochs_done: Count
    global_step: Count
    best_score: Metric = None
    best_epoch: Epoch | None = None
    history: list[HistoryRow] = []


class MetricsRecord(Record):
    """metrics.json: the best epoch, its metrics, and the per-epoch history."""

    best_epoch: Epoch | None
    best: dict[str, Metric]
    history: list[HistoryRow]


class LogRecord(Record):
    """One line of train_log.jsonl: a step (loss parts) or an evaluation (metrics, `best`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Flag | Metric]

    event: Literal["step", "eval"]
    epoch: Epoch


class TrainRecord(Record):
    """run.json's `train`: readcli.training.loop.TrainSettings (its own checks give the ranges).

    The defaults here only make a field optional: a field the file lacks takes the dataclass's own
    default (FinetuneRequest.from_json reads only the fields set). tests/test_resume.py checks that
    these schemas name exactly the dataclasses' fields.
    """

    epochs: Integer = 10
    lr: Finite = 1e-4
    weight_decay: Finite = 1e-4
    batch_size: Integer = 32
    grad_clip: Finite = 0.1
    seed: Integer = 2018
    device: Text = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    select_metric: Text = "MR-full-mAP"
    select_mode: Literal["max", "min"] = "max"


class RunRecord(Record):
    """run.json: readcli.pipelines.finetune.FinetuneRequest (its own checks give the ranges)."""

    data: Text
    out: Text
    task: Text = "tlg"
    backbone: Text = "moment-detr-clip"
    method: Text = "read"
    bottleneck: Integer | None = None
    rnn: Text = "rnn"
    pvla: Flag = True
    pvla_weight: Finite = 1.0
    mass: Finite = 0.5
    mass_mode: Text = "fixed"
    tau: Finite = 0.05
    train_samples: Integer | None = None
    skip_missing: Flag = False
    train: TrainRecord = TrainRecord()
    video_dim: Integer | None = None
    beams: Integer = 5
    no_repeat_ngram_size: Integer = 3
    max_summary_length: Integer = 64
    dataset: Text | None = None
    domain: Text | None = None
    # --fusion-option KEY=VALUE (a vision-guided fusion's official options); their ranges are the
    # fusion config's own checks (readcli.backbones.vision_guided.config)
    fusion_options: dict[Text, Integer | Finite | Flag | Text | None] | None = None
