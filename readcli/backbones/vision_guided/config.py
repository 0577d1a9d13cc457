"""Settings of the vision-guided BART/T5 backbones: the fusion head and generation (frozen, validated).

The text model's own configuration stays a stock `transformers` config; these dataclasses hold only
what readcli adds. docs/summarization.md explains every default.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from readcli.errors import InvalidValueError, choices_text, reject_unknown_keys

# family -> the Hugging Face `model_type` it loads
FAMILIES: dict[str, str] = {"bart": "bart", "t5": "t5"}


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name} {value!r} is invalid: use an integer >= 1")


# official `cross_attn_type` values readcli implements (VG-GPLMs src/run.py documents 0..5)
CROSS_ATTN_TYPES: dict[int, str] = {
    0: "dot-product attention, softmax over the text axis, attended raw video through a linear",
    5: "multi-head attention with separate video key and value projections",
}
# the official image transformer over the video ("VTF"): hard-coded in VG-GPLMs' encoders
IMAGE_TRANSFORMER_LAYERS = 4
IMAGE_TRANSFORMER_HEADS = 8
IMAGE_TRANSFORMER_FFN = 2048
IMAGE_TRANSFORMER_DROPOUT = 0.1
OFFICIAL_FUSION_HEADS = 1  # src/run.py -n_attn_heads default (type 5 only)


def _flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(f"{name} {value!r} is invalid: use true or false")


@dataclass(frozen=True)
class VisionGuidedConfig:
    """The fusion head around a stock text model, with the official VG-GPLMs options (docs/summarization.md).

    Official options (src/run.py flags): cross_attn_type (0 dot-product, 5 multi-head), use_forget_gate,
    use_img_trans (a 4-layer transformer of width video_dim over the video; VG-T5 builds it and never
    calls it, as official), fusion_layer (BART: the encoder layer whose output is fused, -1 = the last;
    T5: always after the encoder's final norm, so only -1), fusion_heads (n_attn_heads, type 5 only;
    None = the official default, 1). post_norm is the official post-fusion LayerNorm.
    readcli's own options (deviations, off by default): mask_padding (the fusion ignores padded video
    rows and, for type 0, padded text tokens), zero_init_output (the fusion's output projection starts
    at zero; with post_norm off a new head is then the identity).
    fusion_dropout: None = the text model's dropout (as official). fusion_trained: the fusion weights
    came with the backbone (an official checkpoint): frozen backbone weights, not a new task head.
    """

    family: str
    video_dim: int = 2048
    fusion_layer: int = -1
    fusion_heads: int | None = None
    fusion_dropout: float | None = None
    fusion_trained: bool = False
    cross_attn_type: int = 0
    use_forget_gate: bool = True
    use_img_trans: bool = False
    post_norm: bool = True
    mask_padding: bool = False
    zero_init_output: bool = False

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
        dropout = self.fusion_dropout
        if dropout is not None and not (
            isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0 <= dropout < 1
        ):
            raise InvalidValueError(
                f"fusion_dropout {dropout!r} is invalid: use a value in [0, 1) or null (the text model's)"
            )
        if isinstance(self.cross_attn_type, bool) or self.cross_attn_type not in CROSS_ATTN_TYPES:
            raise InvalidValueError(
                f"cross_attn_type {self.cross_attn_type!r} is not implemented: choose one of "
                f"{choices_text(CROSS_ATTN_TYPES)} (0 dot-product, 5 multi-head)"
            )
        for name in ("fusion_trained", "use_forget_gate", "use_img_trans", "post_norm", "mask_padding",
                     "zero_init_output"):  # fmt: skip
            _flag(getattr(self, name), name)
        if self.use_img_trans and self.video_dim % IMAGE_TRANSFORMER_HEADS:
            raise InvalidValueError(
                f"use_img_trans needs video_dim divisible by the image transformer's "
                f"{IMAGE_TRANSFORMER_HEADS} heads; video_dim {self.video_dim} is not"
            )

    def fusion_signature(self) -> str:
        """What the fusion computes, in one line: recorded in adapter bundles and compared on load."""
        parts = [
            f"vg-gplms cross_attn_type={self.cross_attn_type}",
            f"forget_gate={int(self.use_forget_gate)}",
            f"img_trans={int(self.use_img_trans)}",
            f"post_norm={int(self.post_norm)}",
            f"mask_padding={int(self.mask_padding)}",
        ]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionGuidedConfig:
        reject_unknown_keys(cls, data, "vision-guided config keys")
        return cls(**data)


@dataclass(frozen=True)
class GenerationSettings:
    """Beam search for summaries, as VG-GPLMs' shipped scripts run it (transformers 4.3.2 `generate`).

    max_length counts the decoder start token (the official `max_output_len` 64: at most 63 new
    tokens). bart_forced_eos: VG-BART's beam search forces the end token at position max_length - 1
    (4.3.2's BART `adjust_logits_during_generation`); greedy search and T5 never force it.
    """

    beams: int = 5
    no_repeat_ngram_size: int = 3
    max_length: int = 64
    length_penalty: float = 1.0
    bart_forced_eos: bool = True

    def __post_init__(self) -> None:
        _positive_int(self.beams, "--beams")
        _positive_int(self.max_length, "summary length (--max-length, --max-summary-length)")
        if self.max_length < 2:
            raise InvalidValueError(
                f"summary length {self.max_length} is invalid: it counts the decoder start token, use >= 2"
            )
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
        _flag(self.bart_forced_eos, "bart_forced_eos")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        reject_unknown_keys(cls, data, "generation settings")
        return cls(**data)


def parse_fusion_options(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--fusion-option KEY=VALUE` items -> VisionGuidedConfig fields (values as JSON: 5, true, null)."""

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidValueError(
                f"--fusion-option {item!r} is invalid: use KEY=VALUE, e.g. cross_attn_type=5"
            )
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip()] = value
    reject_unknown_keys(VisionGuidedConfig, options, "--fusion-option key(s)")
    for fixed in ("family", "fusion_trained"):
        if fixed in options:
            raise InvalidValueError(f"--fusion-option {fixed} cannot be set: it comes from the backbone")
    return options


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
        # lazy: transformers takes seconds to import and only the vision-guided models need it
        from transformers import BartConfig

        return BartConfig(
            vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
            decoder_ffn_dim=2 * d_model, max_position_embeddings=1024, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
            bos_token_id=eos_token_id, decoder_start_token_id=pad_token_id, forced_eos_token_id=None,
        )  # fmt: skip
    if family == "t5":
        # lazy: transformers takes seconds to import and only the vision-guided models need it
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
        # lazy: transformers takes seconds to import and only the vision-guided models need it
        from transformers import BartConfig

        return BartConfig(
            vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
            decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
            max_position_embeddings=1024,
        )  # fmt: skip
    if family == "t5":
        # lazy: transformers takes seconds to import and only the vision-guided models need it
        from transformers import T5Config

        return T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    raise InvalidValueError(
        f"vision-guided family {family!r} is unknown: choose one of {choices_text(FAMILIES)}"
    )


@dataclass(frozen=True)
class VisionGuidedCard:
    """A preset card: the text model's hub id, the env var that may point to a local copy, the fusion."""

    name: str
    hub_id: str
    env_var: str
    config: VisionGuidedConfig
    raw: dict[str, Any]
    generation: GenerationSettings = GenerationSettings()
