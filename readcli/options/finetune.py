"""`readcli finetune`'s task, backbone, method and task-specific options (docs/training.md).

Each task's defaults are written once, in TASK_DEFAULTS; the options only one task reads are listed
in `TASK_ONLY`, so a request of the other task has no such field and the CLI refuses the option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readcli.errors import choices_text
from readcli.options import Option, one_of


@dataclass(frozen=True)
class TaskDefaults:
    backbone: str  # the preset trained when --backbone is not given
    select_metric: str  # the metric that picks the best epoch when --select-metric is not given


TASK_DEFAULTS: dict[str, TaskDefaults] = {
    "tlg": TaskDefaults(backbone="moment-detr-clip", select_metric="MR-full-mAP"),
    "vls": TaskDefaults(backbone="bart-base-vg", select_metric="rougeL"),
}
TASKS: tuple[str, ...] = tuple(TASK_DEFAULTS)

TASK: Option[str] = Option(
    "--task",
    "tlg",
    "tlg (temporal language grounding) or vls (summarization, How2).",
    check=one_of(TASKS),
    valid=f"choose one of {choices_text(TASKS)}",
    problem="is not available",
)
BACKBONE: Option[str | None] = Option(
    "--backbone",
    None,
    "Preset, checkpoint or directory (default: "
    + ", ".join(f"{d.backbone} for {t}" for t, d in TASK_DEFAULTS.items())
    + ").",
)
# The choices are not listed here: they are the adapter registry's keys (readcli.adapters.registry, which
# imports torch), so a new method adds no line here; an unknown name is refused listing them.
METHOD: Option[str] = Option(
    "--method", "read", "Fine-tuning method: read, lora, ia3, ... (every choice: docs/adapters.md)."
)
BOTTLENECK: Option[int | None] = Option("--bottleneck", None, "Adapter width k (default: d/4).")
RNN: Option[str] = Option("--rnn", "rnn", "READ recurrence: rnn|gru|lstm (default {default}).")
SELECT_METRIC: Option[str | None] = Option(
    "--select-metric",
    None,
    "Metric that picks the best epoch ("
    + ", ".join(f"{t}: {d.select_metric}" for t, d in TASK_DEFAULTS.items())
    + ").",
)

# tlg only: YouTube Highlights / TVSum
DATASET: Option[str | None] = Option(
    "--dataset", None, "tlg: youtube|tvsum highlight detection (default: the data's format)."
)
DOMAIN: Option[str | None] = Option(
    "--domain", None, "tlg, youtube/tvsum: one domain, or 'all' (one run per domain, OUT/<domain>/)."
)

# vls only: the vision-guided backbone and its beam search (as VG-GPLMs' shipped scripts)
VIDEO_DIM: Option[int | None] = Option(
    "--video-dim", None, "vls: video feature width (new fusion head; default 2048)."
)
FUSION_OPTION: Option[list[str] | None] = Option(
    "--fusion-option",
    None,
    "vls: KEY=VALUE fusion option (e.g. cross_attn_type=5, use_img_trans=false); repeatable.",
)
BEAMS: Option[int] = Option("--beams", 5, "vls: beam search width (official {default}).")
NO_REPEAT_NGRAM_SIZE: Option[int] = Option(
    "--no-repeat-ngram-size", 3, "vls: block repeated n-grams (0 = off)."
)
MAX_SUMMARY_LENGTH: Option[int] = Option(
    "--max-summary-length", 64, "vls: most tokens per summary, the start token counted (official {default})."
)

# the request fields only one task has: field -> (that task, its option)
TASK_ONLY: dict[str, tuple[str, Option[Any]]] = {
    "dataset": ("tlg", DATASET),
    "domain": ("tlg", DOMAIN),
    "video_dim": ("vls", VIDEO_DIM),
    "fusion_options": ("vls", FUSION_OPTION),
    "beams": ("vls", BEAMS),
    "no_repeat_ngram_size": ("vls", NO_REPEAT_NGRAM_SIZE),
    "max_summary_length": ("vls", MAX_SUMMARY_LENGTH),
}
