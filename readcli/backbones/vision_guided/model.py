"""Vision-guided BART and T5: a stock `transformers` seq2seq model plus a fusion head, as an AdapterHost.

Dimension letters: B batch, S input tokens (= N_L), R target tokens, N_V video tokens, D_V video
feature width, d model width, L encoder layers.

The text model is a stock `BartForConditionalGeneration` / `T5ForConditionalGeneration`, never a
forked modeling file. readcli runs its encoder itself: a forward hook on encoder layer i replaces
that layer's output by the fused states (or, for the last layer, the encoder's output is fused, so
for T5 after its final layer norm), and the decoder receives the result as `encoder_outputs`, in
training and in `generate`. docs/summarization.md describes the choices.
"""

from __future__ import annotations

import copy
import logging
import re
from functools import partial
from typing import Any

import torch
from torch import nn

from readcli.backbones.base import BlockStates
from readcli.backbones.contract import AdapterTargets, SequenceContext
from readcli.backbones.stock import install_stream_sources, stock_preset
from readcli.backbones.vision_guided.config import (
    OFFICIAL_FUSION_HEADS,
    GenerationSettings,
    VisionGuidedConfig,
)
from readcli.backbones.vision_guided.fusion import VisionTextFusion
from readcli.errors import InvalidValueError

log = logging.getLogger(__name__)

ARCHITECTURES: dict[str, str] = {"vision_guided_bart": "bart", "vision_guided_t5": "t5"}


def _text_classes() -> dict[str, type[nn.Module]]:
    # lazy: transformers takes seconds to import and only the vision-guided models need it
    from transformers import BartForConditionalGeneration, T5ForConditionalGeneration

    return {"bart": BartForConditionalGeneration, "t5": T5ForConditionalGeneration}


def _encoder_layers(text_model: Any, family: str) -> nn.ModuleList:
    encoder = text_model.get_encoder()
    layers: nn.ModuleList = encoder.layers if family == "bart" else encoder.block
    return layers


def _fusion_index(config: VisionGuidedConfig, layers: int) -> int:
    """The encoder layer whose output is fused. T5 fuses after its final norm only (official): -1."""
    index = config.fusion_layer + layers if config.fusion_layer < 0 else config.fusion_layer
    if config.family == "t5" and index != layers - 1:
        raise InvalidValueError(
            f"fusion_layer {config.fusion_layer} is invalid for T5: VG-T5 fuses after the encoder's final "
            "norm (as official), use -1"
        )
    if not 0 <= index < layers:
        raise InvalidValueError(
            f"fusion_layer {config.fusion_layer} is out of range for a {layers}-layer encoder: "
            f"use 0..{layers - 1} or -1 (the last)"
        )
    return index


class VisionGuidedSeq2Seq(nn.Module):
    """`text_model` (stock HF BART/T5) + `fusion` (VisionTextFusion); `tokenizer` rides along."""

    def __init__(self, text_model: nn.Module, config: VisionGuidedConfig, tokenizer: Any = None) -> None:
        super().__init__()
        expected = _text_classes()[config.family]
        if not isinstance(text_model, expected):
            raise InvalidValueError(
                f"a vision-guided {config.family} backbone wraps a {expected.__name__}, "
                f"not a {type(text_model).__name__}"
            )
        self.text_model = text_model
        self.config = config
        self.tokenizer = tokenizer
        text_config: Any = text_model.config
        self.d_model = int(text_config.d_model)
        heads = config.fusion_heads or OFFICIAL_FUSION_HEADS  # official -n_attn_heads default
        layers = _encoder_layers(text_model, config.family)
        self.fusion_index, self.fusion_heads = _fusion_index(config, len(layers)), heads
        self.encoder_layers = len(layers)
        # BART fuses a layer's output inside the stack (a hook); T5 the encoder's output, after its final
        # RMS norm and dropout (official), which no layer hook sees
        self.fuses_encoder_output = config.family == "t5"
        dropout = config.fusion_dropout
        if dropout is None:  # official: the text model's own dropout
            dropout = float(text_config.dropout if config.family == "bart" else text_config.dropout_rate)
        reference = next(text_model.parameters())
        # a new head starts as the official one: VG-BART's model-wide init_weights() draws every fusion
        # nn.Linear from N(0, init_std) with zero bias; VG-T5's _init_weights skips plain nn.Linear (torch's)
        linear_std = float(text_config.init_std) if config.family == "bart" else None
        self.fusion = VisionTextFusion(
            config, self.d_model, heads, dropout, linear_std=linear_std,
            device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        self.sequence_context = SequenceContext()
        self.collect_block_states = False
        # state of the forward in progress, read by the layer hooks: the fusion's arguments after the text
        self._pending: tuple[torch.Tensor, ...] | None = None
        self._recorded: list[torch.Tensor] | None = None
        for i, layer in enumerate(layers):
            layer.register_forward_hook(partial(self._after_layer, i))
        preset = stock_preset(self)
        assert preset is not None  # the text model is a stock BART/T5, checked above
        self._preset = preset
        # READ needs each stack's padding and the decoder's cache length (docs/adapters.md)
        install_stream_sources(self, self.sequence_context, preset.sources)

    # --- AdapterHost -------------------------------------------------------------------------
    def architecture_name(self) -> str:
        return f"vision_guided_{self.config.family}"

    def adapter_targets(self) -> AdapterTargets:
        """Stock BART/T5 targets under `text_model`, the fusion as new head, and a VG `proj` target."""
        stock = self._preset.targets
        decoder = next(t for t in stock.feed_forward if t.stream == "decoder")
        last_ff = [n for n, _ in self.named_modules() if re.fullmatch(decoder.pattern, n)][-1]
        extra = {
            **stock.extra,
            "family": self.config.family,
            "video_dim": str(self.config.video_dim),
            "fusion_layer": str(self.fusion_index),
            "fusion_heads": str(self.fusion_heads),
            # what the fusion computes: a bundle made on another fusion (e.g. readcli's pre-VG-GPLMs
            # one, which has no signature) is refused by name instead of loaded into another function
            "fusion_fingerprint": self.config.fusion_signature(),
        }
        return AdapterTargets(
            feed_forward=stock.feed_forward,
            partial=stock.partial,
            # the tied lm_head would train the whole embedding matrix; the last untied linear instead
            projection=(re.escape(last_ff),),
            lora=stock.lora,
            key_value=stock.key_value,
            new_heads=() if self.config.fusion_trained else ("fusion",),
            extra=extra,
        )

    # --- forward -------------------------------------------------------------------------------
    def _after_layer(self, index: int, module: nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # (B, S, d)
        if self._recorded is not None:
            self._recorded.append(hidden)
        if index != self.fusion_index or self.fuses_encoder_output or self._pending is None:
            return None
        fused = self.fusion(hidden, *self._pending)  # (B, S, d)
        return (fused, *output[1:]) if isinstance(output, tuple) else fused

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        video: torch.Tensor,
        video_mask: torch.Tensor,
    ) -> tuple[Any, BlockStates | None]:
        """Encoder outputs with the video fused in, and (when collecting) each layer's text states."""
        # lazy: transformers takes seconds to import and only the vision-guided models need it
        from transformers.modeling_outputs import BaseModelOutput

        valid_video = video_mask.bool()  # (B, N_V)
        if not bool(valid_video.any(1).all()):
            raise InvalidValueError(
                "every sample needs at least one video feature row (a row of the mask set)"
            )
        video = video.to(self.fusion.video_key.weight.dtype)
        # VG-T5 builds the image transformer but never calls it (official): the rows stay raw
        rows = self.fusion.prepare(video, valid_video, run_image_transformer=self.config.family == "bart")
        tokens = self.fusion.project(rows)  # (B, N_V, d)
        text_valid = attention_mask.bool()  # (B, S)
        collect = self.collect_block_states
        self._pending, self._recorded = (rows, valid_video, text_valid, tokens), ([] if collect else None)
        try:
            text_model: Any = self.text_model
            encoded = text_model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
            recorded = self._recorded
        finally:
            self._pending, self._recorded = None, None
        hidden = encoded.last_hidden_state  # (B, S, d)
        if self.fuses_encoder_output:
            hidden = self.fusion(hidden, rows, valid_video, text_valid, tokens)  # (B, S, d)
        states = None
        if recorded is not None:
            text = torch.stack(recorded)  # (L, B, S, d)
            states = BlockStates(
                video=tokens.unsqueeze(0).expand(len(recorded), -1, -1, -1),  # (L, B, N_V, d)
                text=text,
                video_mask=valid_video,
                text_mask=text_valid,  # (B, S)
            )
        return BaseModelOutput(last_hidden_state=hidden), states

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """{"logits" (B, R, vocab), "loss" (with labels), "block_states" (when collecting)}."""
        encoder_outputs, states = self.encode(input_ids, attention_mask, video, video_mask)
        out = self.text_model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            labels=labels,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        result: dict[str, Any] = {"logits": out.logits, "loss": out.loss}
        if states is not None:
            result["block_states"] = states
        return result

    # --- generation ----------------------------------------------------------------------------
    def uses_kv_cache(self) -> bool:
        """False with a sequence-mixing adapter (READ) installed: it cannot run one token at a time."""
        return self.sequence_context.kv_cache_usable

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        settings: GenerationSettings | None = None,
    ) -> torch.Tensor:
        """Beam-searched summary ids (B, R'), decoder start token first."""
        settings = settings or GenerationSettings()
        collect, self.collect_block_states = self.collect_block_states, False
        try:
            encoder_outputs, _ = self.encode(input_ids, attention_mask, video, video_mask)
        finally:
            self.collect_block_states = collect
        config = self.generation_config(settings)
        # in the config, not as an argument: transformers warns on a raw line when both are given
        config.use_cache = self.uses_kv_cache()
        generated: torch.Tensor = self.text_model.generate(  # type: ignore[operator]
            encoder_outputs=encoder_outputs, attention_mask=attention_mask, generation_config=config
        )
        return generated

    def generation_config(self, settings: GenerationSettings) -> Any:
        """The `transformers` GenerationConfig of `settings`, as VG-GPLMs' 4.3.2 `generate` searched.

        Every forcing rule is set here rather than inherited from the text model's config: 4.3.2 forced
        no first token (a hub config's forced_bos_token_id was not read yet) and forced BART's end token
        at max_length - 1 in beam search only.
        """
        text_model: Any = self.text_model
        config = copy.deepcopy(text_model.generation_config)  # the token ids (start, end, pad)
        beam = settings.beams > 1
        forced_eos = self.config.family == "bart" and beam and settings.bart_forced_eos
        config.update(
            num_beams=settings.beams,
            max_length=settings.max_length,  # counts the decoder start token, as official
            max_new_tokens=None,
            min_length=0,
            min_new_tokens=None,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            early_stopping=beam,
            length_penalty=settings.length_penalty,
            do_sample=False,
            num_return_sequences=1,
            forced_bos_token_id=None,
            forced_eos_token_id=config.eos_token_id if forced_eos else None,
        )
        return config

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Generated ids -> summaries (special tokens dropped, whitespace normalised)."""
        if self.tokenizer is None:
            raise InvalidValueError("this vision-guided backbone has no tokenizer attached")
        texts = self.tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
