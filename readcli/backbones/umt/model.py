"""UMT (Liu et al., CVPR 2022, "Unified Multi-modal Transformers"), as a readcli AdapterHost.

Video (and optional audio) encoders, the bottleneck cross-modal encoder, the query generator (one
query per clip, read from the text), the query decoder, and the saliency and boundary (moment)
heads, with the official module names (docs/umt.md). The forward takes Moment-DETR's arguments
`(src_txt, src_txt_mask, src_vid, src_vid_mask)` plus an optional `src_aud`, and returns Moment-DETR's
keys, so `GroundingTask` and the highlight task train it unchanged:

- `saliency_scores` (B, N_V): the saliency head's logits;
- with the boundary head, one moment proposal per clip: `pred_logits` (B, N_V, 2) whose foreground
  softmax equals the official sigmoid center score, and `pred_spans` (B, N_V, 2) normalised
  (center, width) decoded as the official `get_boundary` does; `proposal_mask` (B, N_V) marks the
  proposals of real clips (padding proposals are background and far outside the video).

Dimension letters: B batch, N_V clips, N_L text tokens, L PVLA blocks, d width, D_V / D_A / D_L inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from readcli.backbones.base import BlockStates
from readcli.backbones.checkpoint import state_layout_of
from readcli.backbones.contract import AdapterTargets, FeedForwardTarget, SequenceContext
from readcli.backbones.umt.blocks import (
    BoundaryHead,
    CrossModalEncoder,
    QueryDecoder,
    QueryGenerator,
    SaliencyHead,
    UniModalEncoder,
)
from readcli.backbones.umt.config import UMTConfig
from readcli.backbones.umt.layers import xavier_linears
from readcli.errors import InvalidValueError

ARCHITECTURE = "umt"
STREAM = "clips"  # every UMT stream READ adapts is clip-aligned: one segment id row for all
PAD_LOGIT = -1e4  # foreground logit of a padding proposal (fp16-safe)
PAD_SPAN = (10.0, 1.0)  # (center, width) of a padding proposal: never the cheapest match


class UMT(nn.Module):
    """UMT-S by default; see `UMTConfig` for the variants (audio, query-free, UMT-B)."""

    prompt_tokens: nn.Module | None

    def __init__(self, config: UMTConfig) -> None:
        super().__init__()
        self.config = config
        d, cfg = config.hidden_dim, config
        common: dict[str, Any] = dict(heads=cfg.nheads, ratio=cfg.ffn_ratio, dropout=cfg.dropout)
        self.video_enc = UniModalEncoder(
            cfg.v_feat_dim, d, input_dropout=cfg.input_dropout, max_len=cfg.max_len, **common
        )
        self.audio_enc: UniModalEncoder | None = None
        self.cross_enc: CrossModalEncoder | None = None
        if cfg.has_audio:
            self.audio_enc = UniModalEncoder(
                cfg.a_feat_dim, d, input_dropout=cfg.input_dropout, max_len=cfg.max_len, **common
            )
            self.cross_enc = CrossModalEncoder(
                d, tokens=cfg.bottleneck_tokens, layers=cfg.cross_layers, max_len=cfg.max_len, **common
            )
        self.query_gen: QueryGenerator | None = None
        if cfg.has_query:
            self.query_gen = QueryGenerator(
                cfg.t_feat_dim, d, heads=cfg.nheads, dropout=cfg.dropout, query_dropout=cfg.query_dropout
            )
        self.query_dec = QueryDecoder(d, layers=cfg.dec_layers, max_len=cfg.max_len, **common)
        heads: list[nn.Module] = [SaliencyHead(d)]
        if cfg.boundary_head:
            heads.append(BoundaryHead(d))
        self.pred_head = nn.ModuleList(heads)
        xavier_linears(self)
        # AdapterHost: plain attributes, read by the adapter injection and the PVLA loss.
        self.sequence_context = SequenceContext()
        self.collect_block_states = False
        self.register_module("prompt_tokens", None)  # UMT declares no prompt support (PromptSpec None)

    def architecture_name(self) -> str:
        return ARCHITECTURE

    def adapter_targets(self) -> AdapterTargets:
        """Feed-forward outputs of the video/audio encoders, the cross-modal encoder and the decoder."""
        cfg = self.config
        ffn = [r"video_enc\.encoder\.ffn\.mapping\.3", r"query_dec\.decoder\.\d+\.ffn\.mapping\.3"]
        last = [r"query_dec\.decoder\." + str(cfg.dec_layers - 1)]
        if cfg.has_audio:
            ffn += [
                r"audio_enc\.encoder\.ffn\.mapping\.3",
                r"cross_enc\.encoder\.encoder\.\d+\.ffn[12]\.mapping\.3",
            ]
            last.append(r"cross_enc\.encoder\.encoder\." + str(cfg.cross_layers - 1))
        else:
            last.append(r"video_enc\.encoder")
        projection = [r"pred_head\.0\.saliency_pred\.linear"]
        if cfg.boundary_head:
            projection.append(r"pred_head\.1\.(center|window|offset)_pred\.linear")
        return AdapterTargets(
            feed_forward=tuple(FeedForwardTarget(p, STREAM, batch_first=True) for p in ffn),
            partial=tuple(last),
            projection=tuple(projection),
            lora=(r"(video_enc|audio_enc|cross_enc|query_dec)\..*\.(att\d?\.[qv]|ffn\d?\.mapping\.[03])",),
            prompt=None,
            key_value=(r"(video_enc|audio_enc|cross_enc|query_dec)\..*\.att\d?\.[kv]",),
            extra={k: str(v) for k, v in cfg.to_dict().items() if k not in ("dropout", "input_dropout",
                                                                          "query_dropout")},
        )  # fmt: skip

    def forward(
        self,
        src_txt: torch.Tensor,
        src_txt_mask: torch.Tensor,
        src_vid: torch.Tensor,
        src_vid_mask: torch.Tensor,
        src_aud: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """src_txt (B, N_L, D_L), src_vid (B, N_V, D_V), src_aud (B, N_V, D_A); masks 1/True = valid."""
        self._check_inputs(src_txt, src_txt_mask, src_vid, src_vid_mask, src_aud)
        vid_mask, txt_mask = src_vid_mask.bool(), src_txt_mask.bool()  # (B, N_V), (B, N_L)
        segments = torch.where(vid_mask, 0, -1)  # (B, N_V): one segment of clips, -1 on padding
        with self.sequence_context.use(**{STREAM: segments}):
            memory = self.video_enc(src_vid, vid_mask)  # (B, N_V, d)
            if self.audio_enc is not None and self.cross_enc is not None and src_aud is not None:
                audio = self.audio_enc(src_aud, vid_mask)  # (B, N_V, d)
                memory = self.cross_enc(memory, audio, vid_mask)  # (B, N_V, d)
            queries, tokens = memory, None
            if self.query_gen is not None:
                tokens = self.query_gen.text_tokens(src_txt)  # (B, N_L, d)
                queries = self.query_gen(memory, tokens, txt_mask)  # (B, N_V, d)
            layers = self.query_dec(queries, memory, vid_mask)  # L_dec x (B, N_V, d)
        out = self._heads(layers[-1], vid_mask)
        if self.collect_block_states:
            out["block_states"] = self._block_states(memory, layers, tokens, vid_mask, txt_mask)
        return out

    def _heads(self, x: torch.Tensor, vid_mask: torch.Tensor) -> dict[str, Any]:
        """Saliency logits, and with the boundary head one decoded moment proposal per clip."""
        out: dict[str, Any] = {"saliency_scores": self.pred_head[0](x)}  # (B, N_V)
        if not self.config.boundary_head:
            return out
        center, window, offset = self.pred_head[1](x)  # (B, N_V) each
        n_clips = vid_mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)  # (B, 1)
        index = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[None]  # (1, N_V)
        # get_boundary: [c - w/2, c + w/2 + 1] clips with c = i + offset, normalised by the length;
        # |w| equals the official clamp(min=0) for the positive windows it trains, and keeps a gradient
        mid = (index + offset + 0.5) / n_clips  # (B, N_V)
        width = (window.abs() + 1.0) / n_clips  # (B, N_V)
        spans = torch.stack([mid, width], dim=-1)  # (B, N_V, 2)
        spans = torch.where(vid_mask[..., None], spans, spans.new_tensor(PAD_SPAN))  # (B, N_V, 2)
        foreground = center.masked_fill(~vid_mask, PAD_LOGIT)  # (B, N_V)
        out["pred_logits"] = torch.stack([foreground, torch.zeros_like(foreground)], dim=-1)  # (B, N_V, 2)
        out["pred_spans"] = spans
        out["proposal_mask"] = vid_mask
        return out

    def _block_states(
        self,
        memory: torch.Tensor,
        layers: list[torch.Tensor],
        tokens: torch.Tensor | None,
        vid_mask: torch.Tensor,
        txt_mask: torch.Tensor,
    ) -> BlockStates:
        """PVLA blocks: the fused clip memory and every decoder layer, each against the text tokens."""
        if tokens is None:
            raise InvalidValueError(
                "PVLA needs text tokens, and this UMT has no query generator (t_feat_dim 0); "
                "train without PVLA (--no-pvla) or use a UMT with t_feat_dim > 0"
            )
        video = torch.stack([memory, *layers])  # (L, B, N_V, d)
        text = tokens.unsqueeze(0).expand(video.shape[0], -1, -1, -1)  # (L, B, N_L, d)
        return BlockStates(video=video, text=text, video_mask=vid_mask, text_mask=txt_mask)

    def _check_inputs(
        self,
        src_txt: torch.Tensor,
        src_txt_mask: torch.Tensor,
        src_vid: torch.Tensor,
        src_vid_mask: torch.Tensor,
        src_aud: torch.Tensor | None,
    ) -> None:
        """Shapes only (no value checks: they would synchronise the device on every forward)."""
        cfg = self.config
        checks = [("src_vid", src_vid, cfg.v_feat_dim)]
        if cfg.has_query:
            checks.append(("src_txt", src_txt, cfg.t_feat_dim))
        if cfg.has_audio:
            if src_aud is None:
                raise InvalidValueError(
                    f"this UMT takes audio (a_feat_dim {cfg.a_feat_dim}) but no src_aud was given; give the "
                    "data audio features (DIR/audio_features/{vid}.npz) or use a UMT with a_feat_dim 0"
                )
            checks.append(("src_aud", src_aud, cfg.a_feat_dim))
        elif src_aud is not None:
            raise InvalidValueError(
                "src_aud given, but this UMT takes no audio (a_feat_dim 0); use a UMT with audio, or leave "
                'the audio out ("audio_dir": null in dataset.json)'
            )
        for name, x, width in checks:
            if x.dim() != 3 or x.shape[2] != width:
                raise InvalidValueError(
                    f"{name} has shape {tuple(x.shape)}; this UMT expects (batch, length, {width})"
                )
        if tuple(src_vid_mask.shape) != tuple(src_vid.shape[:2]):
            raise InvalidValueError(
                f"src_vid_mask has shape {tuple(src_vid_mask.shape)}; expected {tuple(src_vid.shape[:2])}"
            )
        if src_aud is not None and tuple(src_aud.shape[:2]) != tuple(src_vid.shape[:2]):
            raise InvalidValueError(
                f"src_aud has (batch, clips) {tuple(src_aud.shape[:2])}; "
                f"src_vid has {tuple(src_vid.shape[:2])}"
            )
        if tuple(src_txt_mask.shape) != tuple(src_txt.shape[:2]) or src_txt.shape[0] != src_vid.shape[0]:
            raise InvalidValueError(
                f"src_txt {tuple(src_txt.shape)} / src_txt_mask {tuple(src_txt_mask.shape)} do not fit "
                f"a batch of {src_vid.shape[0]}"
            )


def build_umt(
    config: UMTConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> UMT:
    """A freshly initialised UMT on `device` (in `dtype` if given)."""
    with torch.device(device):
        model = UMT(config)
    return model if dtype is None else model.to(dtype=dtype)


def umt_state_layout(config: UMTConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every state-dict key with its shape and dtype, computed without allocating weights."""
    return state_layout_of(build_umt(config, device="meta"))
