"""Tiny backbones shared by the adapter and bundle tests, and checks of the test host itself.

Four cases, each a fresh model from a seed, fixed inputs, an output and a loss: a stock HF BART and
T5 from tiny configs, a stock torch `nn.Transformer` in the sequence-first layout, and `TinyGrounder`,
a readcli-style AdapterHost shaped like Moment-DETR ([video; text] encoder in (T, B, d) layout,
segment ids published, prompt tokens accepted, a new task head).

Dimension letters: B batch, N_V video clips, N_L words, T = N_V + N_L, d width, D_V / D_L input widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from readcli.adapters.method import MethodConfig
from readcli.adapters.methods.prompt import PromptTokens
from readcli.adapters.settings import method_settings
from readcli.backbones.contract import (
    AdapterTargets,
    FeedForwardTarget,
    PromptSpec,
    SequenceContext,
    segment_ids_from_masks,
)

VOCAB = 48
# small sizes per method, so the tests stay fast (knobs a method lacks are not passed)
SMALL_KNOBS: dict[str, dict[str, Any]] = {
    "read": {"bottleneck": 4},
    "adapter": {"bottleneck": 4},
    "lora": {"rank": 2},
    "prompt": {"tokens": 2},
}


def small_settings(method: str) -> MethodConfig:
    """`method`'s settings with the small sizes of SMALL_KNOBS."""
    return method_settings(method, **SMALL_KNOBS.get(method, {}))


class TinyLayer(nn.Module):
    """A post-norm encoder layer in the sequence-first layout, like the official Moment-DETR one."""

    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, 2)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x, x, x, key_padding_mask=padding)[0])  # (T, B, d)
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))  # (T, B, d)


class TinyGrounder(nn.Module):
    """Video clips and words in, a saliency score per clip and a new 2-way head out."""

    prompt_tokens: PromptTokens | None

    def __init__(self, video_dim: int = 6, text_dim: int = 5, d: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.video_dim, self.text_dim, self.d = video_dim, text_dim, d
        self.video_proj = nn.Linear(video_dim, d)
        self.text_proj = nn.Linear(text_dim, d)
        self.layers = nn.ModuleList(TinyLayer(d, 2 * d) for _ in range(layers))
        self.score = nn.Linear(d, 1)  # pretrained projection ("proj")
        self.new_head = nn.Linear(d, 2)  # new for the task: always trains
        self.sequence_context = SequenceContext()
        self.collect_block_states = False
        self.register_module("prompt_tokens", None)

    def architecture_name(self) -> str:
        return "tiny_grounder"

    def adapter_targets(self) -> AdapterTargets:
        return AdapterTargets(
            feed_forward=(FeedForwardTarget(r"layers\.\d+\.linear2", "encoder", batch_first=False),),
            partial=(rf"layers\.{len(self.layers) - 1}",),
            projection=(r"score",),
            lora=(r"layers\.\d+\.linear[12]",),
            key_value=(r"layers\.\d+\.self_attn",),
            new_heads=(r"new_head",),
            prompt=PromptSpec(self.video_dim, self.text_dim),
            extra={"d": str(self.d), "layers": str(len(self.layers))},
        )

    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        n_video = video.shape[1]
        if self.prompt_tokens is not None:
            video, video_mask = self.prompt_tokens.prepend("video", video, video_mask)  # (B, P_V + N_V, D_V)
            text, text_mask = self.prompt_tokens.prepend("text", text, text_mask)  # (B, P_L + N_L, D_L)
        x = torch.cat([self.video_proj(video), self.text_proj(text)], dim=1)  # (B, T, d)
        mask = torch.cat([video_mask, text_mask], dim=1)  # (B, T)
        with self.sequence_context.use(encoder=segment_ids_from_masks(video_mask, text_mask)):
            h = x.transpose(0, 1)  # (T, B, d)
            for layer in self.layers:
                h = layer(h, ~mask)
        clips = h.transpose(0, 1)[:, video.shape[1] - n_video : video.shape[1]]  # (B, N_V, d)
        return torch.cat([self.score(clips), self.new_head(clips)], dim=-1)  # (B, N_V, 3)


@dataclass(frozen=True)
class Case:
    """A backbone under test: build(seed) -> fresh model (eval mode); run/loss on fixed inputs."""

    name: str
    build: Callable[[int], Any]
    inputs: Callable[[], dict[str, Any]]
    run: Callable[[Any, dict[str, Any]], torch.Tensor]

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        out = self.run(model, batch)
        target = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        return F.mse_loss(out, target)


def tiny_bart(seed: int = 0) -> Any:
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    )  # fmt: skip
    return BartForConditionalGeneration(config).eval()


def tiny_t5(seed: int = 0) -> Any:
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=VOCAB, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, dropout_rate=0.0
    )
    return T5ForConditionalGeneration(config).eval()


def tiny_transformer(seed: int = 0, *, batch_first: bool = False) -> Any:
    torch.manual_seed(seed)
    return nn.Transformer(
        d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32, dropout=0.0,
        batch_first=batch_first,
    ).eval()  # fmt: skip


def tiny_grounder(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return TinyGrounder().eval()


def _text_batch() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 7), generator=generator)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # right padding in row 1
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": ids[:, :5]}


def _seq2seq_run(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    logits: torch.Tensor = model(**batch).logits
    return logits


def _torch_batch() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(2)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[1, 3:] = True
    return {
        "src": torch.randn(5, 2, 16, generator=generator),  # (T, B, d)
        "tgt": torch.randn(4, 2, 16, generator=generator),
        "src_key_padding_mask": padding,
        "memory_key_padding_mask": padding,
    }


def _grounder_batch() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(3)
    video_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    text_mask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2])
    return {
        "video": torch.randn(2, 6, 6, generator=generator),
        "video_mask": video_mask,
        "text": torch.randn(2, 4, 5, generator=generator),
        "text_mask": text_mask,
    }


CASES: dict[str, Case] = {
    "bart": Case("bart", tiny_bart, _text_batch, _seq2seq_run),
    "t5": Case("t5", tiny_t5, _text_batch, _seq2seq_run),
    "torch": Case("torch", tiny_transformer, _torch_batch, lambda m, b: m(**b)),
    "host": Case("host", tiny_grounder, _grounder_batch, lambda m, b: m(**b)),
}


def train_steps(case: Case, model: nn.Module, steps: int = 2, lr: float = 1e-2) -> None:
    """A few AdamW steps (no weight decay, so an untouched tensor stays exactly where it was)."""
    batch = case.inputs()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        case.loss(model, batch).backward()
        optimiser.step()
    model.eval()


def test_grounder_publishes_segments_and_drops_prompt_positions() -> None:
    model = tiny_grounder()
    seen: list[torch.Tensor | None] = []
    model.layers[0].linear2.register_forward_hook(
        lambda m, a, o: seen.append(model.sequence_context.get("encoder"))
    )
    batch = _grounder_batch()
    out = model(**batch)
    assert out.shape == (2, 6, 3)
    ids = seen[0]
    assert ids is not None and ids.tolist()[1] == [0, 0, 0, 0, -1, -1, 1, 1, -1, -1]
    assert model.sequence_context.get("encoder") is None  # published only during the forward
    model.prompt_tokens = PromptTokens(2, 3, 6, 5)
    assert model(**batch).shape == (2, 6, 3)
    assert seen[1] is not None and seen[1].shape == (2, 15)


def test_prompt_tokens_prepend_valid_positions_and_check_widths() -> None:
    import pytest

    from readcli.errors import InvalidValueError

    prompts = PromptTokens(2, 3, 6, 5)
    x, mask = prompts.prepend("video", torch.randn(4, 7, 6), torch.zeros(4, 7, dtype=torch.bool))
    assert x.shape == (4, 9, 6) and mask[:, :2].all() and not mask[:, 2:].any()
    assert torch.equal(x[1, :2], prompts.video.detach())
    with pytest.raises(InvalidValueError, match="width 5"):
        prompts.prepend("text", torch.randn(4, 7, 6), torch.ones(4, 7, dtype=torch.bool))
    with pytest.raises(InvalidValueError, match="choose video or text"):
        prompts.prepend("audio", torch.randn(4, 7, 6), torch.ones(4, 7, dtype=torch.bool))
