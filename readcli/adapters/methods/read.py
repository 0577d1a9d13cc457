"""READ, the recurrent adapter (paper §3.2, eq. 5): Õ = O + GELU(RNN(O · W_down)) · W_up.

W_down is Kaiming-normal, W_up zero (so a new adapter is the identity), and the RNN keeps PyTorch's
usual initialisation: the paper's all-zero RNN is a dead point that never trains (docs/paper.md §2).
The recurrence runs along time inside each segment of valid positions (docs/adapters.md).

Dimension letters: B batch, T positions, d model width, k bottleneck, R sequences (B x segments),
L longest segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from readcli.adapters.hooks import install_on_feed_forward
from readcli.adapters.method import (
    BottleneckConfig,
    MethodConfig,
    MethodSpec,
    Site,
    check_dropout,
    check_positive_int,
    check_rnn,
    owns_modules_of,
)
from readcli.adapters.segments import SegmentPlan
from readcli.backbones.stock import install_stream_sources
from readcli.errors import InvalidValueError

RNN_TYPES: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass(frozen=True)
class ReadConfig(BottleneckConfig):
    """bottleneck k (None = d / 4, within [8, 64], at injection), the recurrence (rnn, gru, lstm), dropout."""

    method: ClassVar[str] = "read"
    rnn: str = "rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rnn(self.rnn)


class ReadAdapter(nn.Module):
    """Recurrent bottleneck on a feed-forward output O (d wide), through a k-wide RNN, GRU or LSTM."""

    recurrent = True  # reads its stream's segment ids from the SequenceContext

    def __init__(
        self,
        d_model: int,
        bottleneck: int,
        rnn: str = "rnn",
        dropout: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("bottleneck k", bottleneck)
        self.rnn_type = check_rnn(rnn)
        # eq. 5 has no biases on W_down and W_up; the RNN keeps its own.
        self.down = nn.Linear(d_model, bottleneck, bias=False, device=device, dtype=dtype)
        self.rnn = RNN_TYPES[rnn](bottleneck, bottleneck, batch_first=True, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, d_model, bias=False, device=device, dtype=dtype)
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.down.weight)
        nn.init.zeros_(self.up.weight)  # identity at init; the RNN keeps its default init
        self.rnn.reset_parameters()

    def forward(
        self,
        o: torch.Tensor,
        segment_ids: torch.Tensor | None = None,
        *,
        batch_first: bool = True,
        plan: SegmentPlan | None = None,
    ) -> torch.Tensor:
        """Õ for O (B, T, d) or (T, B, d); ids (B, T) with -1 = padding, None = one all-valid segment.

        Padded positions get exactly O back and never influence valid ones; `plan` is the ids'
        precomputed `SegmentPlan` (shared by all blocks of a stream).
        """
        x = o if batch_first else o.transpose(0, 1)  # (B, T, d)
        if x.dim() != 3:
            raise InvalidValueError(f"READ expects a (batch, time, d) output, found shape {tuple(o.shape)}")
        if segment_ids is not None and tuple(segment_ids.shape) != tuple(x.shape[:2]):
            layout = "(B, T)" if batch_first else "(B, T) for a (T, B, d) output"
            raise InvalidValueError(
                f"segment ids of shape {tuple(segment_ids.shape)} do not fit a feed-forward output of shape "
                f"{tuple(o.shape)}: expected {tuple(x.shape[:2])} {layout}"
            )
        z = self.down(x)  # (B, T, k)
        if segment_ids is None:
            h = self.rnn(z)[0]  # (B, T, k)
        else:
            plan = plan if plan is not None else SegmentPlan.build(segment_ids)
            if plan.rows == 0:  # nothing valid: the adapter adds nothing anywhere
                return o
            h = plan.unpack(self.rnn(plan.pack(z))[0])  # (B, T, k), exact zeros at padding
        # GELU(0) = 0 and W_up has no bias, so padded positions receive exactly zero.
        branch = self.up(self.dropout(F.gelu(h)))  # (B, T, d)
        out = x + branch  # (B, T, d)
        return out if batch_first else out.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"rnn={self.rnn_type}"


def install(site: Site, config: ReadConfig) -> tuple[MethodConfig, list[str]]:
    """A READ adapter on every feed-forward output linear; a stock model's stacks then publish segments."""

    def build(linear: nn.Linear, k: int) -> nn.Module:
        weight = linear.weight
        return ReadAdapter(
            linear.out_features, k, config.rnn, config.dropout, device=weight.device, dtype=weight.dtype
        )

    resolved, names = install_on_feed_forward(site, config, build, method="READ")
    install_stream_sources(site.model, site.context, site.stream_sources)
    site.context.mark_sequence_mixing()  # the recurrence cannot decode with a key-value cache
    return resolved, names


SPEC = MethodSpec(
    "read",
    "READ: a recurrent bottleneck after each feed-forward output",
    ReadConfig,
    install=install,
    owns=owns_modules_of(ReadAdapter),
    hooks_modules=True,
)
