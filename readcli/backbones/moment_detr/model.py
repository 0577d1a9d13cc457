"""Moment-DETR (Lei et al., NeurIPS 2021) with the official state-dict layout, as a readcli AdapterHost.

The forward takes the official arguments `(src_txt, src_txt_mask, src_vid, src_vid_mask)` and returns
the official keys: `pred_logits` (B, Q, 2; class 0 = foreground), `pred_spans` (B, Q, 2; normalised
(center, width) for the l1 span type), `saliency_scores` (B, N_V), and `aux_outputs` (one dict per
decoder layer but the last) when `aux_loss` is set. A checkpoint in the official `model_best.ckpt`
format loads unchanged; on a random-weight checkpoint in that format the outputs equal the official
code's bit for bit on the development CPU (bench/official_parity.py) and the test holds them within
3e-6 of the stored reference (tests/test_moment_detr.py). No trained official checkpoint was run.

readcli additions (docs/backbones.md): optional prompt tokens prepended to each modality, segment ids
published for READ, and per-encoder-layer video/text states for PVLA.

Dimension letters: B batch, N_V video clips, N_L text tokens, P_V / P_L video / text prompt tokens,
T = P_V + N_V + P_L + N_L encoder length, Q query slots, L layers, d hidden width, D_V / D_L input widths.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from readcli.backbones.base import BlockStates
from readcli.backbones.checkpoint import state_layout_of
from readcli.backbones.contract import (
    AdapterTargets,
    FeedForwardTarget,
    PromptSpec,
    SequenceContext,
    segment_ids_from_masks,
)
from readcli.backbones.moment_detr.config import MomentDETRConfig
from readcli.backbones.moment_detr.layers import (
    MLP,
    PositionEmbeddingSine,
    TrainablePositionalEncoding,
    input_projection,
)
from readcli.backbones.moment_detr.transformer import Transformer
from readcli.errors import InvalidValueError

ARCHITECTURE = "moment_detr"


class MomentDETR(nn.Module):
    """Moment-DETR: [video; text] encoder, query decoder, class/span heads and a saliency head."""

    prompt_tokens: nn.Module | None

    def __init__(self, config: MomentDETRConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.transformer = Transformer(
            d_model=d, nhead=config.nheads, enc_layers=config.enc_layers, dec_layers=config.dec_layers,
            dim_feedforward=config.dim_feedforward, dropout=config.dropout,
        )  # fmt: skip
        self.position_embed = PositionEmbeddingSine(d)
        self.txt_position_embed = TrainablePositionalEncoding(config.max_q_l, d, dropout=config.input_dropout)
        span_dim = 2 if config.span_loss_type == "l1" else config.max_v_l * 2
        self.span_embed = MLP(d, d, span_dim, 3)
        self.class_embed = nn.Linear(d, 2)  # 0: foreground, 1: background
        self.query_embed = nn.Embedding(config.num_queries, d)
        self.input_txt_proj = input_projection(
            config.t_feat_dim, d, n_layers=config.n_input_proj, dropout=config.input_dropout
        )
        self.input_vid_proj = input_projection(
            config.v_feat_dim, d, n_layers=config.n_input_proj, dropout=config.input_dropout
        )
        if config.contrastive_align_loss:
            self.contrastive_align_projection_query = nn.Linear(d, config.contrastive_hdim)
            self.contrastive_align_projection_txt = nn.Linear(d, config.contrastive_hdim)
            self.contrastive_align_projection_vid = nn.Linear(d, config.contrastive_hdim)
        self.saliency_proj = nn.Linear(d, 1)
        # AdapterHost: plain attributes (not modules), read by the adapter injection and the PVLA loss.
        self.sequence_context = SequenceContext()
        self.collect_block_states = False
        self.register_module("prompt_tokens", None)  # a module with .video (P_V, d) and .text (P_L, d)

    def architecture_name(self) -> str:
        return ARCHITECTURE

    def adapter_targets(self) -> AdapterTargets:
        """Where each fine-tuning method goes (choices explained in docs/backbones.md)."""
        last_enc, last_dec = self.config.enc_layers - 1, self.config.dec_layers - 1
        return AdapterTargets(
            feed_forward=(
                FeedForwardTarget(
                    r"transformer\.encoder\.layers\.\d+\.linear2", "encoder", batch_first=False
                ),
                FeedForwardTarget(
                    r"transformer\.decoder\.layers\.\d+\.linear2", "decoder", batch_first=False
                ),
            ),
            partial=(
                rf"transformer\.encoder\.layers\.{last_enc}",
                rf"transformer\.decoder\.layers\.{last_dec}",
            ),
            projection=(r"class_embed", r"span_embed\.layers\.2", r"saliency_proj"),
            lora=(r"transformer\.(encoder|decoder)\.layers\.\d+\.linear[12]",),
            key_value=(r"transformer\.(encoder|decoder)\.layers\.\d+\.(self_attn|multihead_attn)",),
            prompt=PromptSpec(self.config.hidden_dim, self.config.hidden_dim),
            extra={
                "hidden_dim": str(self.config.hidden_dim),
                "enc_layers": str(self.config.enc_layers),
                "dec_layers": str(self.config.dec_layers),
                "num_queries": str(self.config.num_queries),
                "v_feat_dim": str(self.config.v_feat_dim),
                "t_feat_dim": str(self.config.t_feat_dim),
            },
        )

    def forward(
        self,
        src_txt: torch.Tensor,
        src_txt_mask: torch.Tensor,
        src_vid: torch.Tensor,
        src_vid_mask: torch.Tensor,
    ) -> dict[str, Any]:
        """src_txt (B, N_L, D_L), src_vid (B, N_V, D_V); masks (B, N) with 1/True = valid."""
        self._check_inputs(src_txt, src_txt_mask, src_vid, src_vid_mask)
        vid_mask, txt_mask = src_vid_mask.bool(), src_txt_mask.bool()  # (B, N_V), (B, N_L)
        vid = self.input_vid_proj(src_vid)  # (B, N_V, d)
        txt = self.input_txt_proj(src_txt)  # (B, N_L, d)
        # Positions come from the real clips only, so prompts never shift the clips' sine positions.
        pos_vid = self.position_embed(vid_mask).to(vid.dtype)  # (B, N_V, d)
        pos_txt = self.txt_position_embed(txt) if self.config.use_txt_pos else torch.zeros_like(txt)
        vid, pos_vid, vid_mask_p = self._prepend_prompt("video", vid, pos_vid, vid_mask)  # (B, P_V+N_V, d)
        txt, pos_txt, txt_mask_p = self._prepend_prompt("text", txt, pos_txt, txt_mask)  # (B, P_L+N_L, d)
        src = torch.cat([vid, txt], dim=1)  # (B, T, d)
        mask = torch.cat([vid_mask_p, txt_mask_p], dim=1)  # (B, T) True = valid
        pos = torch.cat([pos_vid, pos_txt], dim=1)  # (B, T, d)
        segments = segment_ids_from_masks(vid_mask_p, txt_mask_p)  # (B, T) 0 video, 1 text, -1 pad
        # The decoder's query slots are all valid: no ids, i.e. one segment in slot order.
        with self.sequence_context.use(encoder=segments, decoder=None):
            hs, memory, states = self.transformer(
                src, ~mask, self.query_embed.weight, pos, keep_states=self.collect_block_states
            )  # (L, B, Q, d), (B, T, d)
        # Drop prompt positions so every output keeps the official shape.
        n_pv, n_v, n_pl = vid.shape[1] - src_vid.shape[1], src_vid.shape[1], txt.shape[1] - src_txt.shape[1]
        video_part = slice(n_pv, n_pv + n_v)
        text_part = slice(n_pv + n_v + n_pl, None)
        out = self._heads(hs, memory[:, video_part], memory[:, text_part])
        if self.collect_block_states:
            out["block_states"] = BlockStates(
                video=torch.stack([s[:, video_part] for s in states]),  # (L, B, N_V, d)
                text=torch.stack([s[:, text_part] for s in states]),  # (L, B, N_L, d)
                video_mask=vid_mask,
                text_mask=txt_mask,
            )
        return out

    def _heads(self, hs: torch.Tensor, vid_mem: torch.Tensor, txt_mem: torch.Tensor) -> dict[str, Any]:
        """Official heads: class and span per decoder layer, saliency from the video memory."""
        logits = self.class_embed(hs)  # (L, B, Q, 2)
        spans = self.span_embed(hs)  # (L, B, Q, 2) or (L, B, Q, 2 * max_v_l)
        if self.config.span_loss_type == "l1":
            spans = spans.sigmoid()
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_spans": spans[-1]}
        if self.config.contrastive_align_loss:
            proj_queries = F.normalize(
                self.contrastive_align_projection_query(hs), p=2, dim=-1
            )  # (L, B, Q, c)
            proj_txt = F.normalize(self.contrastive_align_projection_txt(txt_mem), p=2, dim=-1)  # (B, N_L, c)
            proj_vid = F.normalize(self.contrastive_align_projection_vid(vid_mem), p=2, dim=-1)  # (B, N_V, c)
            out.update(proj_queries=proj_queries[-1], proj_txt_mem=proj_txt, proj_vid_mem=proj_vid)
        # squeeze(-1), not the official squeeze(): a batch of one keeps its batch dimension.
        out["saliency_scores"] = self.saliency_proj(vid_mem).squeeze(-1)  # (B, N_V)
        if self.config.aux_loss:
            out["aux_outputs"] = [
                {"pred_logits": a, "pred_spans": b} for a, b in zip(logits[:-1], spans[:-1], strict=True)
            ]
            if self.config.contrastive_align_loss:
                for aux, queries in zip(out["aux_outputs"], proj_queries[:-1], strict=True):
                    aux.update(proj_queries=queries, proj_txt_mem=proj_txt)
        return out

    def _prepend_prompt(
        self, side: str, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Put the learnable prompt tokens of one modality in front of it: valid, with zero position."""
        prompts = self.prompt_tokens
        if prompts is None:
            return x, pos, mask
        tokens = getattr(prompts, side, None)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[1] != x.shape[2]:
            found = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise InvalidValueError(
                f"prompt_tokens.{side} must be a (n_tokens, {x.shape[2]}) tensor, found {found}"
            )
        batch, n_prompt = x.shape[0], tokens.shape[0]
        tokens = tokens.to(dtype=x.dtype).unsqueeze(0).expand(batch, -1, -1)  # (B, P, d)
        x = torch.cat([tokens, x], dim=1)  # (B, P + N, d)
        pos = torch.cat([pos.new_zeros(batch, n_prompt, pos.shape[2]), pos], dim=1)  # (B, P + N, d)
        mask = torch.cat([mask.new_ones(batch, n_prompt), mask], dim=1)  # (B, P + N)
        return x, pos, mask

    def _check_inputs(
        self,
        src_txt: torch.Tensor,
        src_txt_mask: torch.Tensor,
        src_vid: torch.Tensor,
        src_vid_mask: torch.Tensor,
    ) -> None:
        """Shapes only (no value checks: they would synchronise the device on every forward)."""
        cfg = self.config
        for name, x, width in (("src_vid", src_vid, cfg.v_feat_dim), ("src_txt", src_txt, cfg.t_feat_dim)):
            if x.dim() != 3 or x.shape[2] != width:
                raise InvalidValueError(
                    f"{name} has shape {tuple(x.shape)}; this Moment-DETR expects (batch, length, {width})"
                )
        for name, m, x in (("src_vid_mask", src_vid_mask, src_vid), ("src_txt_mask", src_txt_mask, src_txt)):
            if tuple(m.shape) != tuple(x.shape[:2]):
                raise InvalidValueError(f"{name} has shape {tuple(m.shape)}; expected {tuple(x.shape[:2])}")
        if src_vid.shape[0] != src_txt.shape[0]:
            raise InvalidValueError(
                f"batch sizes differ: src_vid {src_vid.shape[0]}, src_txt {src_txt.shape[0]}"
            )
        if cfg.use_txt_pos and src_txt.shape[1] > cfg.max_q_l:
            raise InvalidValueError(
                f"src_txt has {src_txt.shape[1]} tokens; "
                f"this model's text positions allow at most {cfg.max_q_l}"
            )


def build_moment_detr(
    config: MomentDETRConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> MomentDETR:
    """A freshly initialised Moment-DETR on `device` (in `dtype` if given)."""
    with torch.device(device):
        model = MomentDETR(config)
    return model if dtype is None else model.to(dtype=dtype)


def state_layout(config: MomentDETRConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every state-dict key with its shape and dtype, computed without allocating weights."""
    return state_layout_of(build_moment_detr(config, device="meta"))
