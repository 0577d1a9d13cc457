"""Moment-DETR's transformer: DETR's post-norm encoder and decoder, sequence-first (T, B, d).

As in DETR (and the official Moment-DETR code), positions are added to the queries and keys of every
attention but never to the values, the encoder has no final norm (post-norm), and the decoder
normalises each layer's output with one shared LayerNorm before the heads read it.

Every attention is called as the official code calls it, with `need_weights` at its default (True):
torch then computes softmax(q/sqrt(d) k^T + mask) v with explicit batched matmuls and applies dropout
to the weights. `need_weights=False` would take the fused scaled-dot-product kernel instead, whose
blocked summation differs in the last bits (5e-7 on the parity outputs) and whose dropout draws other
random numbers; with the official call readcli's outputs equal the official code's bit for bit
(bench/official_parity.py).

Dimension letters: B batch, T encoder sequence length ([video; text], prompts included), Q query slots,
L layers, d hidden width, F feed-forward width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _frozen(*modules: nn.Module) -> bool:
    return not any(p.requires_grad for m in modules for p in m.parameters())


class EncoderLayer(nn.Module):
    """Self-attention over [video; text], then the feed-forward block; each followed by add & norm.

    When the attention block is frozen (READ and the other adapter methods) and gradients flow through
    it, its activations are recomputed in the backward pass instead of stored: a frozen block needs
    them only to pass gradients down to adapters below, and they are the largest part of the step's
    memory (B x heads x T x T attention maps and dropout masks). Results are bit-identical (dropout
    replays the same random state); the cost is one more attention forward per layer
    (docs/adapters.md, "Memory").
    """

    # set False on an instance to store the attention activations instead (tests compare both)
    recompute_frozen_attention: bool = True

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)  # the feed-forward output O (READ goes here)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, padding_mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """src, pos: (T, B, d); padding_mask: (B, T) bool, True = padding -> (T, B, d)."""
        if (
            self.recompute_frozen_attention
            and self.training
            and torch.is_grad_enabled()
            and src.requires_grad  # below the first adapter nothing is recorded anyway
            and _frozen(self.self_attn, self.norm1)
        ):
            src = checkpoint(self._attend, src, padding_mask, pos, use_reentrant=False)
        else:
            src = self._attend(src, padding_mask, pos)
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))  # (T, B, d)
        return self.norm2(src + self.dropout2(ffn))  # (T, B, d)

    def _attend(self, src: torch.Tensor, padding_mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Self-attention with add & norm: (T, B, d) -> (T, B, d)."""
        qk = src + pos  # (T, B, d)
        attended = self.self_attn(qk, qk, src, key_padding_mask=padding_mask)[0]  # as officially (docstring)
        return self.norm1(src + self.dropout1(attended))  # (T, B, d)


class DecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the encoder memory, feed-forward; add & norm after each."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_padding_mask: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
    ) -> torch.Tensor:
        """tgt, query_pos: (Q, B, d); memory, pos: (T, B, d); memory_padding_mask: (B, T) -> (Q, B, d)."""
        qk = tgt + query_pos  # (Q, B, d)
        attended = self.self_attn(qk, qk, tgt)[0]  # as officially (docstring)
        tgt = self.norm1(tgt + self.dropout1(attended))  # (Q, B, d)
        attended = self.multihead_attn(
            tgt + query_pos, memory + pos, memory, key_padding_mask=memory_padding_mask
        )[0]
        tgt = self.norm2(tgt + self.dropout2(attended))  # (Q, B, d)
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))  # (Q, B, d)
        return self.norm3(tgt + self.dropout3(ffn))  # (Q, B, d)


class TransformerEncoder(nn.Module):
    """A stack of encoder layers; optionally keeps every layer's output (the PVLA block states)."""

    def __init__(self, n_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(n_layers)
        )

    def forward(
        self, src: torch.Tensor, padding_mask: torch.Tensor, pos: torch.Tensor, *, keep_states: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """src, pos: (T, B, d) -> memory (T, B, d) and, if keep_states, L tensors (T, B, d)."""
        states: list[torch.Tensor] = []
        for layer in self.layers:
            src = layer(src, padding_mask, pos)  # (T, B, d)
            if keep_states:
                states.append(src)
        return src, states


class TransformerDecoder(nn.Module):
    """A stack of decoder layers; returns every layer's output through the shared final norm."""

    def __init__(self, n_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        memory: torch.Tensor,
        memory_padding_mask: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
    ) -> torch.Tensor:
        """memory, pos: (T, B, d); query_pos: (Q, B, d) -> (L, Q, B, d)."""
        tgt = torch.zeros_like(query_pos)  # (Q, B, d) the queries start empty; query_pos carries them
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_padding_mask, pos, query_pos)  # (Q, B, d)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs)  # (L, Q, B, d)


class Transformer(nn.Module):
    """Encoder over [video; text] and a decoder of learned query slots reading its memory."""

    def __init__(
        self,
        *,
        d_model: int,
        nhead: int,
        enc_layers: int,
        dec_layers: int,
        dim_feedforward: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.encoder = TransformerEncoder(enc_layers, d_model, nhead, dim_feedforward, dropout)
        self.decoder = TransformerDecoder(dec_layers, d_model, nhead, dim_feedforward, dropout)
        for param in self.parameters():  # the official initialisation (matters only for fresh models)
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def forward(
        self,
        src: torch.Tensor,
        padding_mask: torch.Tensor,
        query_embed: torch.Tensor,
        pos: torch.Tensor,
        *,
        keep_states: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """src, pos: (B, T, d); padding_mask: (B, T) True = padding; query_embed: (Q, d).

        Returns hs (L, B, Q, d), memory (B, T, d) and the encoder layers' outputs, each (B, T, d).
        """
        src = src.transpose(0, 1)  # (T, B, d)
        pos = pos.transpose(0, 1)  # (T, B, d)
        query_pos = query_embed.unsqueeze(1).expand(-1, src.shape[1], -1)  # (Q, B, d)
        memory, states = self.encoder(src, padding_mask, pos, keep_states=keep_states)  # (T, B, d)
        hs = self.decoder(memory, padding_mask, pos, query_pos)  # (L, Q, B, d)
        return hs.transpose(1, 2), memory.transpose(0, 1), [s.transpose(0, 1) for s in states]
