"""The fine-tuning methods and their settings: one frozen dataclass, validated on construction.

Every method is one name, installed by `readcli.adapters.inject`. The defaults and the choice of the
bottleneck k per backbone width are explained in docs/adapters.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from readcli.errors import InvalidValueError, choices_text, reject_unknown_keys

# method name -> what it trains (a plain registry: a miss lists the choices)
METHODS: dict[str, str] = {
    "full": "every backbone parameter (full fine-tuning)",
    "partial": "the last encoder and the last decoder layer",
    "bias": "every bias term (BitFit)",
    "proj": "the last linear projection(s) before the task outputs",
    "lora": "low-rank updates of the declared linears (peft LoRA)",
    "prompt": "learnable tokens prepended to the video and the text input",
    "adapter": "a Houlsby down-up bottleneck after each feed-forward output",
    "read": "READ: a recurrent bottleneck after each feed-forward output",
}
RNN_CHOICES: tuple[str, ...] = ("rnn", "gru", "lstm")
# Methods that add a bottleneck of width k (READ, Houlsby).
BOTTLENECK_METHODS = frozenset({"read", "adapter"})


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidValueError(f"unknown method {method!r}: choose one of {choices_text(METHODS)}")
    return method


def check_rnn(rnn: object) -> str:
    if not isinstance(rnn, str) or rnn not in RNN_CHOICES:
        raise InvalidValueError(f"unknown RNN type {rnn!r}: choose one of {choices_text(RNN_CHOICES)}")
    return rnn


# Upper bounds that keep a typo from sizing an allocation: READ's recurrence is k x k per layer, so
# k = 4096 is already 64 MB a layer (the paper's k is at most a few hundred; docs/adapters.md).
MAX_BOTTLENECK = 4096
MAX_LORA_RANK = 4096
MAX_PROMPT_TOKENS = 1024


def check_positive_int(name: str, value: object, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidValueError(f"{name} = {value!r} is invalid: use a positive integer")
    if maximum is not None and value > maximum:
        raise InvalidValueError(f"{name} = {value!r} is invalid: use a positive integer <= {maximum}")
    return value


def check_dropout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise InvalidValueError(f"dropout = {value!r} is invalid: use a probability in [0, 1)")
    return float(value)


def default_bottleneck(d_model: int) -> int:
    """k for a backbone of width d when none is given: d / 4, kept within [8, 64] (docs/adapters.md)."""
    return min(64, max(8, d_model // 4))


@dataclass(frozen=True)
class MethodSettings:
    """One fine-tuning method and its knobs; fields a method does not use are ignored by it.

    bottleneck: READ / Houlsby width k; None picks `default_bottleneck(d_model)` at injection.
    rnn: READ's recurrence (rnn, gru, lstm). lora_rank / lora_alpha: LoRA r and alpha.
    prompt_tokens: learnable tokens per modality for `prompt`. dropout: inside adapters and LoRA.
    """

    method: str = "read"
    bottleneck: int | None = None
    rnn: str = "rnn"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    prompt_tokens: int = 10
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.bottleneck is not None:
            check_positive_int("bottleneck k", self.bottleneck, MAX_BOTTLENECK)
        check_rnn(self.rnn)
        check_positive_int("lora_rank", self.lora_rank, MAX_LORA_RANK)
        alpha = self.lora_alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, int | float)
            or not math.isfinite(alpha)
            or alpha <= 0
        ):
            raise InvalidValueError(f"lora_alpha = {alpha!r} is invalid: use a positive number")
        check_positive_int("prompt_tokens", self.prompt_tokens, MAX_PROMPT_TOKENS)
        check_dropout(self.dropout)

    def resolved(self, d_model: int) -> MethodSettings:
        """These settings with k filled in for a backbone of width `d_model` (bottleneck methods only)."""
        if self.method in BOTTLENECK_METHODS and self.bottleneck is None:
            return replace(self, bottleneck=default_bottleneck(d_model))
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MethodSettings:
        """Settings from a JSON object; unknown keys are errors that list the known ones."""
        reject_unknown_keys(cls, data, "method setting(s)")
        return cls(**dict(data))
