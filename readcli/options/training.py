"""The optimisation loop's options (`readcli finetune`; docs/training.md).

readcli.training.loop.TrainSettings holds them in a run; its defaults are these (a test holds them equal).
"""

from __future__ import annotations

from readcli.options import Option, integer_at_least, number_in, one_of

EPOCHS: Option[int] = Option("--epochs", 10, "Epochs.", integer_at_least(1), "use an integer >= 1")
LR: Option[float] = Option(
    "--lr",
    1e-4,  # the official Moment-DETR learning rate
    "AdamW learning rate.",
    check=number_in(0, 1, low_open=True),
    valid="use a learning rate in (0, 1]",
)
BATCH_SIZE: Option[int] = Option(
    "--batch-size", 32, "Training batch size.", integer_at_least(1), "use an integer >= 1"
)
SEED: Option[int] = Option("--seed", 2018, "Seed for subset, initialisation and data order.")
DEVICE: Option[str] = Option("--device", "auto", "auto|cpu|cuda[:N].")
AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
AMP: Option[str] = Option(
    "--amp",
    "auto",
    "auto|off|bf16|fp16 (auto: bf16 on CUDA only).",
    check=one_of(AMP_MODES),
    valid="choose auto, off, bf16 or fp16",
)
TRAIN_SAMPLES: Option[int | None] = Option(
    "--train-samples",
    None,
    "Low-resource subset size (default: every row).",
    check=lambda v: v is None or integer_at_least(1)(v),
    valid="use an integer >= 1",
)
SKIP_MISSING: Option[bool] = Option("--skip-missing", False, "Skip rows whose features are missing.")
