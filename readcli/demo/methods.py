"""The rows of the demo tables: each fine-tuning method of the paper, READ-PVLA and its ablations.

`default` rows run in every `readcli demo`; the others (the paper's ablations: full mass, GRU and
LSTM, pooled cosine and L2 distances instead of OT as in its Table 9, a PVLA weight x mass grid, the
UMT backbone; and (IA)^3, a method the paper does not compare) run with `--full` or by name with
`--method`. READ without PVLA is a default row: it is the comparison that isolates PVLA. docs/demo.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from readcli.adapters.settings import MethodSettings, method_settings
from readcli.alignment import PVLASettings
from readcli.errors import InvalidValueError, choices_text

Group = Literal["baseline", "ours", "ablation"]
Alignment = Literal["ot", "pooled-cosine", "pooled-l2"]
PVLA_DEFAULT = PVLASettings()  # mass 0.5, weight 1.0: readcli's defaults (docs/pvla.md)
REFERENCE = "read-pvla"  # every row is compared with this one


@dataclass(frozen=True)
class DemoMethod:
    """One row: a method injected into the pretrained backbone, with or without an alignment loss."""

    key: str
    label: str
    group: Group
    settings: MethodSettings
    pvla: PVLASettings | None = None
    backbone: str = "moment_detr"  # which pretrained demo backbone the method adapts ("umt")
    alignment: Alignment = "ot"  # with pvla set: partial OT, or a pooled distance (paper Table 9)
    default: bool = True  # in the default run; False: only with --full
    full_lr: bool = False  # uses the full fine-tuning learning-rate grid (docs/demo.md)


def _baselines() -> tuple[DemoMethod, ...]:
    rows = []
    for name, label in (
        ("full", "Full fine-tuning"),
        ("partial", "Partial"),
        ("bias", "Bias (BitFit)"),
        ("proj", "Proj"),
        ("lora", "LoRA"),
        ("prompt", "Prompt"),
        ("adapter", "Adapter (Houlsby)"),
    ):
        rows.append(
            DemoMethod(name, label, "baseline", method_settings(name), full_lr=name in ("full", "partial"))
        )
    return tuple(rows)


def _ablations(read: MethodSettings) -> tuple[DemoMethod, ...]:
    def row(key: str, label: str, settings: MethodSettings = read, **kw: object) -> DemoMethod:
        return DemoMethod(key, label, "ablation", settings, default=False, **kw)  # type: ignore[arg-type]

    grid = tuple(
        row(
            f"read-pvla-w{w:g}-m{m:g}",
            f"READ-PVLA, weight {w:g}, mass {m:g}",
            pvla=PVLASettings(weight=w, mass=m),
        )
        for w in (0.3, 3.0)
        for m in (0.3, 0.8)
    )
    return (
        row("read-pvla-fullmass", "READ-PVLA, full-mass OT (s = 1)", pvla=PVLASettings(mass=1.0)),
        row("read-pvla-gru", "READ-PVLA, GRU", method_settings("read", rnn="gru"), pvla=PVLA_DEFAULT),
        row("read-pvla-lstm", "READ-PVLA, LSTM", method_settings("read", rnn="lstm"), pvla=PVLA_DEFAULT),
        row("read-cosine", "READ + pooled cosine distance", pvla=PVLA_DEFAULT, alignment="pooled-cosine"),
        row("read-l2", "READ + pooled L2 distance", pvla=PVLA_DEFAULT, alignment="pooled-l2"),
        *grid,
        row("umt-read-pvla", "READ-PVLA, UMT backbone", pvla=PVLA_DEFAULT, backbone="umt"),
    )


def _rows() -> tuple[DemoMethod, ...]:
    read = method_settings("read")
    return (
        *_baselines(),
        DemoMethod("read", "READ (= READ-PVLA w/o PVLA)", "ablation", read),
        DemoMethod(REFERENCE, "READ-PVLA", "ours", read, PVLA_DEFAULT),
        *_ablations(read),
        # not in the paper's tables, so not a default row: the default tables stay the paper's comparison
        DemoMethod("ia3", "(IA)^3", "baseline", method_settings("ia3"), default=False),
    )


DEMO_METHODS: dict[str, DemoMethod] = {row.key: row for row in _rows()}


def demo_method(key: str) -> DemoMethod:
    method = DEMO_METHODS.get(key)
    if method is None:
        raise InvalidValueError(f"unknown demo method {key!r}: choose one of {choices_text(DEMO_METHODS)}")
    return method


def default_methods(full: bool) -> tuple[str, ...]:
    """The method keys of a default run, or of a --full run (every row)."""
    return tuple(key for key, m in DEMO_METHODS.items() if full or m.default)
