"""What a `readcli finetune` run depends on, split by task, and its RUN_DIR/run.json.

`FinetuneRequest` holds what every task reads (data, backbone, method, PVLA, the loop's settings);
`GroundingFinetuneRequest` (tlg) adds the highlight dataset and domain, `SummarizationFinetuneRequest`
(vls) the vision-guided fusion and the beam search. A field exists only where it has an effect, so
an option of the other task is refused, naming the option and the task. Defaults and ranges come
from readcli.options (one definition each, shared with the CLI's options).

run.json is the request as one flat object with its `task` (readcli.training.run_records.RunRecord
checks its types). Files written before the split carry every field of both tasks: the other task's
fields are dropped when read, since they never had an effect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from readcli.backbones.vision_guided.config import parse_fusion_options
from readcli.errors import InputFileError, InvalidValueError
from readcli.options.alignment import MASS, MASS_MODE, PVLA, PVLA_WEIGHT, TAU
from readcli.options.finetune import (
    BEAMS,
    BOTTLENECK,
    MAX_SUMMARY_LENGTH,
    METHOD,
    NO_REPEAT_NGRAM_SIZE,
    RNN,
    TASK,
    TASK_DEFAULTS,
    TASK_ONLY,
)
from readcli.options.training import SKIP_MISSING, TRAIN_SAMPLES
from readcli.pipelines.run_dir import check_resume_settings
from readcli.records import read_json_file, validate
from readcli.training.loop import TrainSettings
from readcli.training.run_records import RunRecord

TRAIN_FIELDS = frozenset(f.name for f in fields(TrainSettings))


@dataclass(frozen=True)
class FinetuneRequest:
    """What every task's run depends on. Use a task's subclass; `task` names it."""

    task: ClassVar[str] = ""

    data: str
    out: str
    backbone: str = ""  # each task's class sets its default preset (readcli.options.finetune)
    method: str = METHOD.default
    bottleneck: int | None = BOTTLENECK.default
    rnn: str | None = None  # None: not given, the method's default (readcli.options.finetune.RNN)
    pvla: bool = PVLA.default
    pvla_weight: float = PVLA_WEIGHT.default
    mass: float = MASS.default
    mass_mode: str = MASS_MODE.default
    tau: float = TAU.default
    train_samples: int | None = TRAIN_SAMPLES.default
    skip_missing: bool = SKIP_MISSING.default
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if self.task not in TASK_DEFAULTS:
            raise TypeError("FinetuneRequest is the tasks' common part: use a task's class (REQUESTS)")
        # checked here, before any heavy work, with the names a user typed
        PVLA_WEIGHT.validate(self.pvla_weight)
        MASS.validate(self.mass)
        MASS_MODE.validate(self.mass_mode)
        TAU.validate(self.tau)
        TRAIN_SAMPLES.validate(self.train_samples)
        # the task's selection metric where the request keeps another task's (TrainSettings' default
        # is tlg's): the one place a task's default metric is resolved
        metric, wanted = self.train.select_metric, TASK_DEFAULTS[self.task].select_metric
        if metric != wanted and metric in {d.select_metric for d in TASK_DEFAULTS.values()}:
            object.__setattr__(self, "train", replace(self.train, select_metric=wanted))

    def to_json(self) -> dict[str, Any]:
        # rnn as it runs (files of every version record one): a resume compares, and reloads, that
        return {"task": self.task, **asdict(self), "rnn": self.rnn or RNN.default}

    @classmethod
    def from_json(cls, data: Any, source: Path) -> TaskRequest:
        return request_from_json(data, source)


@dataclass(frozen=True)
class GroundingFinetuneRequest(FinetuneRequest):
    """tlg: temporal language grounding, or highlight detection on YouTube Highlights / TVSum."""

    task: ClassVar[str] = "tlg"

    backbone: str = TASK_DEFAULTS["tlg"].backbone
    # "youtube" | "tvsum" (None: the layout's own rows, e.g. QVHighlights)
    dataset: str | None = None
    # one domain, or "all" (each domain trained and evaluated on its own: pipelines/finetune_domains.py)
    domain: str | None = None


@dataclass(frozen=True)
class SummarizationFinetuneRequest(FinetuneRequest):
    """vls: video-language summarization (How2) with a vision-guided BART/T5."""

    task: ClassVar[str] = "vls"

    backbone: str = TASK_DEFAULTS["vls"].backbone
    # the video feature width (a new fusion head is built for it; None = the backbone's)
    video_dim: int | None = None
    # the fusion options replacing the preset's (VisionGuidedConfig fields; docs/summarization.md)
    fusion_options: dict[str, Any] | None = None
    # beam search for the validation summaries, as VG-GPLMs' shipped scripts (docs/summarization.md)
    beams: int = BEAMS.default
    no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE.default
    max_summary_length: int = MAX_SUMMARY_LENGTH.default


TaskRequest = GroundingFinetuneRequest | SummarizationFinetuneRequest
REQUESTS: dict[str, type[TaskRequest]] = {
    "tlg": GroundingFinetuneRequest,
    "vls": SummarizationFinetuneRequest,
}


def _parsed(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` with `fusion_options` given as the CLI's KEY=VALUE items (--fusion-option) parsed into
    the request's dict (None: none given)."""
    items = options.get("fusion_options")
    if not isinstance(items, list | tuple):
        return dict(options)
    return {**options, "fusion_options": parse_fusion_options(list(items)) or None}


def new_request(task: str, data: str | Path, out: str | Path, options: Mapping[str, Any]) -> TaskRequest:
    """A fresh run's request: `options` are the ones given, by request or TrainSettings field name
    (`fusion_options` as a dict or as KEY=VALUE items); every other takes its default. An option of
    another task is refused."""
    cls = REQUESTS[TASK.validate(task)]
    _refuse_other_task(cls, options)
    options = _parsed(options)
    train = {k: v for k, v in options.items() if k in TRAIN_FIELDS and v is not None}
    top = {k: v for k, v in options.items() if k not in TRAIN_FIELDS}
    return cls(data=str(data), out=str(out), train=TrainSettings(**train), **top)


def apply_changes(
    request: TaskRequest, changes: Mapping[str, Any], *, out: str | Path, source: Path
) -> TaskRequest:
    """The recorded `request` with the options given again on resume (by field name), continuing in
    `out` (`source`: the file it was read from). A different --task or --out is refused here, and an
    option of the other task; the pipeline refuses any other option that differs from the recorded
    one (only --epochs and --device may change)."""
    changes = dict(changes)
    task = changes.pop("task", request.task)
    if task != request.task:
        check_resume_settings({"task": task}, {"task": request.task}, source)
    given_out = changes.pop("out", None)
    if given_out is not None and os.path.abspath(given_out) != os.path.abspath(out):
        raise InvalidValueError(
            f"--out {given_out} differs from --resume {out}: a resumed run continues in its own folder; "
            "drop --out"
        )
    _refuse_other_task(type(request), changes)
    changes = _parsed(changes)
    train = replace(request.train, **{k: v for k, v in changes.items() if k in TRAIN_FIELDS})
    top = {k: v for k, v in changes.items() if k not in TRAIN_FIELDS}
    return replace(request, **top, out=str(out), train=train)


def _refuse_other_task(cls: type[TaskRequest], options: Mapping[str, Any]) -> None:
    own = {f.name for f in fields(cls)} | TRAIN_FIELDS
    for name in options:
        if name in own:
            continue
        if name in TASK_ONLY:
            other, option = TASK_ONLY[name]
            raise InvalidValueError(
                f"{option.flag} does not apply to --task {cls.task}: it is an option of --task {other}"
            )
        raise InvalidValueError(f"{name!r} is not an option of a --task {cls.task} run")  # a caller's bug


def request_from_json(data: Any, source: Path) -> TaskRequest:
    """The request a run.json holds, checked by its schema (RunRecord); a field the file lacks takes
    its default, and a field of the other task (files written before the split hold them) is dropped."""
    record = validate(RunRecord, data, str(source)).model_dump(exclude_unset=True)
    task = record.pop("task", TASK.default)
    if task not in REQUESTS:
        raise InputFileError(f"{source}: task {task!r} is not available: {TASK.valid}")
    cls = REQUESTS[task]
    train = record.pop("train", {})
    own = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in record.items() if k in own}, train=TrainSettings(**train))
    except InvalidValueError as err:
        raise InputFileError(f"{source}: {err}") from None


def read_run_file(path: Path) -> TaskRequest:
    if not path.is_file():
        raise InputFileError(
            f"cannot resume: {path} not found (is {path.parent} a readcli finetune run directory?)"
        )
    return request_from_json(read_json_file(path), path)
