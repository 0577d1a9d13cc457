"""Settings of the vision-guided BART/T5 backbones: the fusion head and generation (frozen, validated).

The text model's own configuration stays a stock `transformers` config; these dataclasses hold only
what readcli adds. docs/summarization.md explains every default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from readcli.errors import InvalidValueError, choices_text, reject_unknown_keys

# family -> the Hugging Face `model_type` it loads
FAMILIES: dict[str, str] = {"bart": "bart", "t5": "t5"}


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name} {value!r} is invalid: use an integer >= 1")


@dataclass(frozen=True)
class VisionGuidedConfig:
    """The fusion head around a stock text model (video projection, text->video attention, gate).

    fusion_layer: encoder layer after which the fused states replace the text states; -1 (the last)
        fuses the encoder's output, i.e. after T5's final layer norm, where the decoder reads it.
    fusion_heads: attention heads of the text->video attention; None = the text model's heads.
    fusion_trained: True when the fusion weights come with the backbone (a vision-guided checkpoint):
        then they are frozen backbone weights, not a new task head.
    """

    family: str
    video_dim: int = 2048
    fusion_layer: int = -1
    fusion_heads: int | None = None
    fusion_dropout: float = 0.1
    fusion_trained: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InvalidValueError(
                f"vision-guided family {self.family!r} is unknown: choose one of {choices_text(FAMILIES)}"
            )
        _positive_int(self.video_dim, "video_dim")
        if isinstance(self.fusion_layer, bool) or not isinstance(self.fusion_layer, int):
            raise InvalidValueError(
                f"fusion_layer {self.fusion_layer!r} is invalid: use an integer layer index"
            )
        if self.fusion_heads is not None:
            _positive_int(self.fusion_heads, "fusion_heads")
        if not (isinstance(self.fusion_dropout, int | float) and 0 <= self.fusion_dropout < 1):
            raise InvalidValueError(
                f"fusion_dropout {self.fusion_dropout!r} is invalid: use a value in [0, 1)"
            )
        if not isinstance(self.fusion_trained, bool):
            raise InvalidValueError(f"fusion_trained {self.fusion_trained!r} is invalid: use true or false")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionGuidedConfig:
        reject_unknown_keys(cls, data, "vision-guided config keys")
        return cls(**data)


@dataclass(frozen=True)
class GenerationSettings:
    """Beam search for summaries (the official VG-BART How2 settings)."""

    beams: int = 4
    no_repeat_ngram_size: int = 3
    max_length: int = 64  # new tokens per summary, end token included
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        _positive_int(self.beams, "--beams")
        _positive_int(self.max_length, "summary length (--max-length, --max-summary-length)")
        if isinstance(self.no_repeat_ngram_size, bool) or not isinstance(self.no_repeat_ngram_size, int):
            raise InvalidValueError(
                f"--no-repeat-ngram-size {self.no_repeat_ngram_size!r} is invalid: "
                "use an integer >= 0 (0 = off)"
            )
        if self.no_repeat_ngram_size < 0:
            raise InvalidValueError(
                f"--no-repeat-ngram-size {self.no_repeat_ngram_size} is invalid: "
                "use an integer >= 0 (0 = off)"
            )
        if not (isinstance(self.length_penalty, int | float) and math.isfinite(self.length_penalty)):
            raise InvalidValueError(f"length_penalty {self.length_penalty!r} is invalid: use a finite number")


def tiny_text_config(
    family: str,
    *,
    vocab_size: int,
    pad_token_id: int,
    eos_token_id: int,
    d_model: int = 32,
    layers: int = 2,
) -> Any:
    """A tiny stock BART or T5 config (tests): d_model 32, 2 layers, dropout 0, the tokenizer's ids.

    The decoder starts from the pad token for both families (T5's convention; BART's own start token
    is its end token, which a byte-level test tokenizer may not share).
    """
    if family == "bart":
        from transformers import BartConfig

        return BartConfig(
            vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
            decoder_ffn_dim=2 * d_model, max_position_embeddings=1024, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
            bos_token_id=eos_token_id, decoder_start_token_id=pad_token_id, forced_eos_token_id=None,
        )  # fmt: skip
    if family == "t5":
        from transformers import T5Config

        config = T5Config(
            vocab_size=vocab_size, d_model=d_model, d_ff=2 * d_model, d_kv=d_model // 4, num_layers=layers,
            num_heads=4, dropout_rate=0.0, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
        )  # fmt: skip
        config.decoder_start_token_id = pad_token_id
        return config
    raise InvalidValueError(
        f"vision-guided family {family!r} is unknown: choose one of {choices_text(FAMILIES)}"
    )


def base_text_config(family: str) -> Any:
    """The bart-base / t5-base configuration (benches, parameter counts; random weights, no download)."""
    if family == "bart":
        from transformers import BartConfig

        return BartConfig(
            vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
            decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
            max_position_embeddings=1024,
        )  # fmt: skip
    if family == "t5":
        from transformers import T5Config

        return T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    raise InvalidValueError(
        f"vision-guided family {family!r} is unknown: choose one of {choices_text(FAMILIES)}"
    )
