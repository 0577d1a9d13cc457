"""Prompt tuning: learnable tokens a backbone prepends to its video and its text input.

The contract with a backbone (docs/adapters.md, "Prompt tokens"): its `AdapterTargets.prompt`
(`PromptSpec`) gives the widths; `inject` installs a `PromptTokens` at `model.prompt_tokens`; the
backbone's forward puts `prompt_tokens.video` (P_V, D_V) in front of every video sequence and
`prompt_tokens.text` (P_L, D_L) in front of every text sequence, as valid positions, and drops them
from its outputs. `prepend` does the first part for (B, N, D) inputs with (B, N) validity masks.

Dimension letters: B batch, N tokens, P prompt tokens, D width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from readcli.adapters.method import (
    MAX_PROMPT_TOKENS,
    MethodConfig,
    MethodSpec,
    MethodUnavailable,
    Site,
    check_positive_int,
    owns_modules_of,
)
from readcli.adapters.targets import architecture_of, reference_placement
from readcli.errors import InvalidValueError


@dataclass(frozen=True)
class PromptConfig(MethodConfig):
    """`tokens`: learnable tokens per modality (the same number on the video and the text side)."""

    method: ClassVar[str] = "prompt"
    tokens: int = 10

    def __post_init__(self) -> None:
        check_positive_int("tokens", self.tokens, MAX_PROMPT_TOKENS)


class PromptTokens(nn.Module):
    """`video` (P_V, D_V) and `text` (P_L, D_L) learnable tokens, normal(0, 0.02) at init."""

    def __init__(
        self,
        n_video: int,
        n_text: int,
        video_dim: int,
        text_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_video", n_video),
            ("n_text", n_text),
            ("video_dim", video_dim),
            ("text_dim", text_dim),
        ):
            check_positive_int(f"prompt {name}", value)
        self.video = nn.Parameter(torch.empty(n_video, video_dim, device=device, dtype=dtype))  # (P_V, D_V)
        self.text = nn.Parameter(torch.empty(n_text, text_dim, device=device, dtype=dtype))  # (P_L, D_L)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.video, std=0.02)
        nn.init.normal_(self.text, std=0.02)

    def prepend(self, side: str, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, D), mask (B, N) True = valid -> (B, P + N, D), (B, P + N) with the prompts first."""
        if side not in ("video", "text"):
            raise InvalidValueError(f"prompt side {side!r} is invalid: choose video or text")
        tokens = self.video if side == "video" else self.text  # (P, D)
        if x.dim() != 3 or x.shape[2] != tokens.shape[1]:
            raise InvalidValueError(
                f"{side} input of shape {tuple(x.shape)} does not take {side} prompts of width "
                f"{tokens.shape[1]}: expected (batch, length, {tokens.shape[1]})"
            )
        batch = x.shape[0]
        prompts = tokens.to(dtype=x.dtype).unsqueeze(0).expand(batch, -1, -1)  # (B, P, D)
        valid = mask.new_ones(batch, tokens.shape[0])  # (B, P)
        return torch.cat([prompts, x], dim=1), torch.cat([valid, mask], dim=1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two token matrices, so the module can also be called."""
        return self.video, self.text


def install(site: Site, config: PromptConfig) -> tuple[MethodConfig, list[str]]:
    """A `PromptTokens` at `model.prompt_tokens`, as wide as the backbone's `PromptSpec` says."""
    model, spec = site.model, site.targets.prompt
    if spec is None:
        raise MethodUnavailable(
            f"{architecture_of(model)} does not accept prompt tokens (its AdapterTargets.prompt is None)"
        )
    if getattr(model, "prompt_tokens", None) is not None:
        raise InvalidValueError(
            f"{architecture_of(model)} already carries prompt tokens; build a fresh backbone"
        )
    device, dtype = reference_placement(model)
    n = config.tokens
    model.prompt_tokens = PromptTokens(n, n, spec.video_dim, spec.text_dim, device=device, dtype=dtype)
    return config, ["prompt_tokens"]


SPEC = MethodSpec(
    "prompt",
    "learnable tokens prepended to the video and the text input",
    PromptConfig,
    install=install,
    owns=owns_modules_of(PromptTokens),
)
