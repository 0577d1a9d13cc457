"""Batching items into padded torch tensors with masks (the only data module that imports torch).

Dimension letters: B batch, N_V video clips, D_v video width, D_A audio width, N_L text tokens,
D_t text width, P saliency pairs, S input tokens, R target tokens, T video frames.

Grounding batches use the official Moment-DETR argument names and conventions: `src_vid`,
`src_vid_mask`, `src_txt`, `src_txt_mask`, masks float32 1.0 = valid / 0.0 = padding (the official
`pad_sequences_1d`; its model calls `.bool()` on them), padding rows zero, right-padded. UMT's audio
(`src_aud`) has one row per video clip, so it is padded like `src_vid` and shares its mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from readcli.data.how2 import How2Item, How2Limits
from readcli.data.moment_dataset import MomentItem
from readcli.errors import InvalidValueError

T_co = TypeVar("T_co", covariant=True)


def pad_rows(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N_i, D) float arrays -> (B, max N_i, D) float32 zero-padded, (B, max N_i) float32 mask."""
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise InvalidValueError(f"cannot batch features of different widths: {sorted(widths)}")
    longest = max(len(a) for a in arrays)
    padded = np.zeros((len(arrays), longest, widths.pop()), dtype=np.float32)  # (B, N, D)
    mask = np.zeros((len(arrays), longest), dtype=np.float32)  # (B, N)
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
        mask[row, : len(array)] = 1.0
    return torch.from_numpy(padded), torch.from_numpy(mask)


@dataclass
class MomentBatch:
    """A padded batch of `MomentItem`s: model inputs, targets and metadata."""

    src_vid: torch.Tensor  # (B, N_V, D_v) float32
    src_vid_mask: torch.Tensor  # (B, N_V) float32 1/0
    src_txt: torch.Tensor  # (B, N_L, D_t) float32
    src_txt_mask: torch.Tensor  # (B, N_L) float32 1/0
    span_labels: list[torch.Tensor]  # B x (W_i, 2) normalised (center, width)
    saliency_pos_labels: torch.Tensor  # (B, P) int64
    saliency_neg_labels: torch.Tensor  # (B, P) int64
    saliency_valid: torch.Tensor  # (B,) bool: False where the labels rank nothing
    saliency_all_labels: torch.Tensor  # (B, N_V) float32 mean annotator score, 0 at padding
    qids: list[int | str]
    vids: list[str]
    queries: list[str]
    durations: list[float]  # seconds
    domains: list[str | None]
    src_aud: torch.Tensor | None = None  # (B, N_V, D_A) float32, zero-padded, mask src_vid_mask

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for a Moment-DETR-style forward (`src_aud` only when the data has audio)."""
        inputs = {
            "src_txt": self.src_txt,
            "src_txt_mask": self.src_txt_mask,
            "src_vid": self.src_vid,
            "src_vid_mask": self.src_vid_mask,
        }
        if self.src_aud is not None:
            inputs["src_aud"] = self.src_aud
        return inputs

    def targets(self) -> dict[str, Any]:
        """Targets in the official criterion's format (`span_labels` as a list of {"spans": ...})."""
        return {
            "span_labels": [{"spans": spans} for spans in self.span_labels],
            "saliency_pos_labels": self.saliency_pos_labels,
            "saliency_neg_labels": self.saliency_neg_labels,
            "saliency_valid": self.saliency_valid,
            "saliency_all_labels": self.saliency_all_labels,
        }

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> MomentBatch:
        moved: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device, non_blocking=non_blocking)
            elif f.name == "span_labels":
                moved[f.name] = [t.to(device, non_blocking=non_blocking) for t in value]
        return replace(self, **moved)


def collate_moments(items: Sequence[MomentItem]) -> MomentBatch:
    """Pad a list of items (a DataLoader's `collate_fn`)."""
    if not items:
        raise InvalidValueError("cannot collate an empty batch")
    pair_counts = {len(item.saliency_pos) for item in items}
    if len(pair_counts) != 1:
        raise InvalidValueError(f"items carry different numbers of saliency pairs: {sorted(pair_counts)}")
    src_vid, src_vid_mask = pad_rows([item.video for item in items])  # (B, N_V, D_v), (B, N_V)
    src_txt, src_txt_mask = pad_rows([item.text for item in items])  # (B, N_L, D_t), (B, N_L)
    src_aud = _pad_audio(items)  # (B, N_V, D_A) or None
    saliency = np.zeros(src_vid_mask.shape, dtype=np.float32)  # (B, N_V)
    for row, item in enumerate(items):
        saliency[row, : len(item.saliency)] = item.saliency
    return MomentBatch(
        src_vid=src_vid,
        src_vid_mask=src_vid_mask,
        src_txt=src_txt,
        src_txt_mask=src_txt_mask,
        span_labels=[torch.from_numpy(item.span_labels.copy()) for item in items],
        saliency_pos_labels=torch.from_numpy(np.stack([item.saliency_pos for item in items])),  # (B, P)
        saliency_neg_labels=torch.from_numpy(np.stack([item.saliency_neg for item in items])),  # (B, P)
        saliency_valid=torch.tensor([item.saliency_valid for item in items], dtype=torch.bool),  # (B,)
        saliency_all_labels=torch.from_numpy(saliency),
        qids=[item.qid for item in items],
        vids=[item.vid for item in items],
        queries=[item.query for item in items],
        durations=[item.duration for item in items],
        domains=[item.domain for item in items],
        src_aud=src_aud,
    )


def _pad_audio(items: Sequence[MomentItem]) -> torch.Tensor | None:
    """(B, N_V, D_A) zero-padded audio, whose valid rows are exactly the video's (one mask for both)."""
    audio = [item.audio for item in items if item.audio is not None]
    if not audio:
        return None
    if len(audio) != len(items):
        raise InvalidValueError(f"{len(items) - len(audio)} of {len(items)} items in a batch have no audio")
    for item, rows in zip(items, audio, strict=True):
        if len(rows) != len(item.video):
            raise InvalidValueError(
                f"qid {item.qid}: {len(rows)} audio rows for {len(item.video)} video clips "
                "(audio and video must be cut to the same clips)"
            )
    padded, _ = pad_rows(audio)  # (B, N_V, D_A), the mask equals src_vid_mask
    return padded


class _Indexable(Protocol[T_co]):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> T_co: ...


class TorchDataset(torch.utils.data.Dataset[T_co]):
    """A `torch.utils.data.Dataset` view of a readcli dataset (they are torch-free), for typed DataLoaders."""

    def __init__(self, dataset: _Indexable[T_co]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> T_co:
        return self.dataset[index]


class Tokenizer(Protocol):
    """The part of a `transformers` tokenizer that summarization batches need."""

    pad_token_id: int | None

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class SummaryBatch:
    """A padded How2 batch for vision-guided BART/T5 (HF conventions: labels -100 at padding)."""

    input_ids: torch.Tensor  # (B, S) int64
    attention_mask: torch.Tensor  # (B, S) int64 1/0
    labels: torch.Tensor  # (B, R) int64, -100 at padding
    video: torch.Tensor  # (B, T, 2048) float32
    video_mask: torch.Tensor  # (B, T) int64 1/0
    video_ids: list[str]
    truncated_inputs: int  # transcripts cut at max_input_tokens
    truncated_targets: int  # summaries cut at max_target_tokens


def collate_summaries(items: Sequence[How2Item], tokenizer: Tokenizer, limits: How2Limits) -> SummaryBatch:
    """Tokenize transcripts and summaries, truncating at the limits and counting what was cut."""
    if not items:
        raise InvalidValueError("cannot collate an empty batch")
    input_ids, attention_mask, cut_inputs = _tokenize(
        tokenizer, [item.transcript for item in items], limits.max_input_tokens, target=False
    )
    labels, label_mask, cut_targets = _tokenize(
        tokenizer, [item.summary for item in items], limits.max_target_tokens, target=True
    )
    labels = labels.masked_fill(label_mask == 0, -100)  # (B, R): padding ignored by the loss
    video, video_mask = pad_rows([item.video for item in items])  # (B, T, 2048), (B, T)
    return SummaryBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=labels,
        video=video,
        video_mask=video_mask.long(),
        video_ids=[item.video_id for item in items],
        truncated_inputs=cut_inputs,
        truncated_targets=cut_targets,
    )


def _tokenize(
    tokenizer: Tokenizer, texts: list[str], max_len: int, *, target: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Padded ids and mask at most max_len long, and how many texts were longer.

    A first pass at max_len + 1 tells which texts overflow (without the tokenizer's too-long
    warning); the second, at max_len, lets the tokenizer truncate so its end token stays in place.
    """
    key = "text_target" if target else "text"
    probe = tokenizer(**{key: texts}, max_length=max_len + 1, truncation=True)["input_ids"]
    overflow = sum(len(ids) > max_len for ids in probe)
    encoded = tokenizer(
        **{key: texts}, max_length=max_len, truncation=True, padding=True, return_tensors="pt"
    )
    return encoded["input_ids"], encoded["attention_mask"], overflow
