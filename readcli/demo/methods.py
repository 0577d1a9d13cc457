"""The rows of the demo table: each fine-tuning method of the paper, READ-PVLA and its ablations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from readcli.adapters.settings import MethodSettings
from readcli.alignment import PVLASettings
from readcli.errors import InvalidValueError, choices_text

Group = Literal["baseline", "ours", "ablation"]
PVLA_DEFAULT = PVLASettings()  # mass 0.5, weight 1.0: readcli's defaults (docs/pvla.md)


@dataclass(frozen=True)
class DemoMethod:
    """One row: a method injected into the pretrained backbone, with or without the PVLA loss."""

    key: str
    label: str
    group: Group
    settings: MethodSettings
    pvla: PVLASettings | None = None
    backbone: str = "moment_detr"  # which pretrained demo backbone the method adapts ("umt")


def _rows() -> tuple[DemoMethod, ...]:
    baselines = tuple(
        DemoMethod(name, label, "baseline", MethodSettings(method=name))
        for name, label in (
            ("full", "Full fine-tuning"),
            ("partial", "Partial"),
            ("bias", "Bias (BitFit)"),
            ("proj", "Proj"),
            ("lora", "LoRA"),
            ("prompt", "Prompt"),
            ("adapter", "Adapter (Houlsby)"),
        )
    )
    read = MethodSettings(method="read")
    return (
        *baselines,
        DemoMethod("read", "READ (= READ-PVLA w/o PVLA)", "ablation", read),
        DemoMethod("read-pvla", "READ-PVLA", "ours", read, PVLA_DEFAULT),
        DemoMethod(
            "read-pvla-fullmass", "READ-PVLA, full-mass OT (s = 1)", "ablation", read, PVLASettings(mass=1.0)
        ),  # fmt: skip
        DemoMethod(
            "read-pvla-gru",
            "READ-PVLA, GRU",
            "ablation",
            MethodSettings(method="read", rnn="gru"),
            PVLA_DEFAULT,
        ),  # fmt: skip
        DemoMethod(
            "read-pvla-lstm",
            "READ-PVLA, LSTM",
            "ablation",
            MethodSettings(method="read", rnn="lstm"),
            PVLA_DEFAULT,
        ),  # fmt: skip
        DemoMethod("umt-read-pvla", "READ-PVLA, UMT backbone", "ours", read, PVLA_DEFAULT, backbone="umt"),
    )


DEMO_METHODS: dict[str, DemoMethod] = {row.key: row for row in _rows()}


def demo_method(key: str) -> DemoMethod:
    method = DEMO_METHODS.get(key)
    if method is None:
        raise InvalidValueError(f"unknown demo method {key!r}: choose one of {choices_text(DEMO_METHODS)}")
    return method
