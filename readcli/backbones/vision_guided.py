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

import logging
import re
from functools import partial
from typing import Any

import torch
from torch import nn

from readcli.adapters.context import SequenceContext
from readcli.adapters.stock import install_stream_sources, stock_preset
from readcli.backbones.base import AdapterTargets, BlockStates
from readcli.backbones.vision_guided_config import GenerationSettings, VisionGuidedConfig
from readcli.backbones.vision_guided_fusion import VisionTextFusion
from readcli.errors import InvalidValueError

log = logging.getLogger(__name__)

ARCHITECTURES: dict[str, str] = {"vision_guided_bart": "bart", "vision_guided_t5": "t5"}


def _text_classes() -> dict[str, type[nn.Module]]:
    from transformers import BartForConditionalGeneration, T5ForConditionalGeneration

    return {"bart": BartForConditionalGeneration, "t5": T5ForConditionalGeneration}


def _encoder_layers(text_model: Any, family: str) -> nn.ModuleList:
    encoder = text_model.get_encoder()
    layers: nn.ModuleList = encoder.layers if family == "bart" else encoder.block
    return layers


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
        heads = config.fusion_heads or int(
            text_config.encoder_attention_heads if config.family == "bart" else text_config.num_heads
        )
        layers = _encoder_layers(text_model, config.family)
        index = config.fusion_layer + len(layers) if config.fusion_layer < 0 else config.fusion_layer
        if not 0 <= index < len(layers):
            raise InvalidValueError(
                f"fusion_layer {config.fusion_layer} is out of range for a {len(layers)}-layer encoder: "
                f"use 0..{len(layers) - 1} or -1 (the last)"
            )
        self.fusion_index, self.fusion_heads, self.encoder_layers = index, heads, len(layers)
        reference = next(text_model.parameters())
        self.fusion = VisionTextFusion(
            config.video_dim, self.d_model, heads, config.fusion_dropout,
            device=reference.device, dtype=reference.dtype,
        )  # fmt: skip
        self.sequence_context = SequenceContext()
        self.collect_block_states = False
        # state of the forward in progress, read by the layer hooks
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
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
        }
        return AdapterTargets(
            feed_forward=stock.feed_forward,
            partial=stock.partial,
            # the tied lm_head would train the whole embedding matrix; the last untied linear instead
            projection=(re.escape(last_ff),),
            lora=stock.lora,
            new_heads=() if self.config.fusion_trained else ("fusion",),
            extra=extra,
        )

    # --- forward -------------------------------------------------------------------------------
    def _after_layer(self, index: int, module: nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # (B, S, d)
        if self._recorded is not None:
            self._recorded.append(hidden)
        if index != self.fusion_index or index == self.encoder_layers - 1 or self._pending is None:
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
        from transformers.modeling_outputs import BaseModelOutput

        valid_video = video_mask.bool()  # (B, N_V)
        if not bool(valid_video.any(1).all()):
            raise InvalidValueError(
                "every sample needs at least one video feature row (a row of the mask set)"
            )
        tokens = self.fusion.project(video.to(self.fusion.video_proj.weight.dtype))  # (B, N_V, d)
        collect = self.collect_block_states
        self._pending, self._recorded = (tokens, valid_video), ([] if collect else None)
        try:
            text_model: Any = self.text_model
            encoded = text_model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
            recorded = self._recorded
        finally:
            self._pending, self._recorded = None, None
        hidden = encoded.last_hidden_state  # (B, S, d)
        if self.fusion_index == self.encoder_layers - 1:
            hidden = self.fusion(hidden, tokens, valid_video)  # (B, S, d)
        states = None
        if recorded is not None:
            text = torch.stack(recorded)  # (L, B, S, d)
            states = BlockStates(
                video=tokens.unsqueeze(0).expand(len(recorded), -1, -1, -1),  # (L, B, N_V, d)
                text=text,
                video_mask=valid_video,
                text_mask=attention_mask.bool(),  # (B, S)
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
        """False with READ injected: its decoder recurrence cannot run one token at a time."""
        from readcli.adapters.inject import injection_of  # here: it pulls in peft

        report = injection_of(self)
        return report is None or report.settings.method != "read"

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
        beam: dict[str, Any] = (
            {"length_penalty": settings.length_penalty, "early_stopping": True} if settings.beams > 1 else {}
        )
        generated: torch.Tensor = self.text_model.generate(  # type: ignore[operator]
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            num_beams=settings.beams,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            max_new_tokens=settings.max_length,
            do_sample=False,
            use_cache=self.uses_kv_cache(),
            **beam,
        )
        return generated

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Generated ids -> summaries (special tokens dropped, whitespace normalised)."""
        if self.tokenizer is None:
            raise InvalidValueError("this vision-guided backbone has no tokenizer attached")
        texts = self.tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
