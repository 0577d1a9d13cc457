"""One injection mechanism for every method on stock BART, T5, torch Transformer and a readcli host."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_adapters_hosts import (
    CASES,
    VOCAB,
    small_settings,
    tiny_bart,
    tiny_grounder,
    tiny_t5,
    tiny_transformer,
    train_steps,
)
from torch import nn

from readcli.adapters.accounting import ParameterCount, count_parameters
from readcli.adapters.inject import adapter_parameters, inject, injection_of
from readcli.adapters.registry import METHODS
from readcli.adapters.settings import method_settings
from readcli.backbones.contract import AdapterTargets, FeedForwardTarget
from readcli.backbones.stock import stock_targets
from readcli.errors import InvalidValueError

ADDING = ("lora", "adapter", "read", "ia3")  # methods that add modules that start as the identity
SUPPORTED = {
    "bart": [m for m in METHODS if m != "prompt"],
    "t5": [m for m in METHODS if m not in ("prompt", "bias")],  # T5 has no biases and takes no prompts
    "torch": [m for m in METHODS if m not in ("prompt", "proj")],  # no head, no prompt input
    "host": list(METHODS),
}
CASE_METHODS = [(c, m) for c, methods in SUPPORTED.items() for m in methods]


@pytest.mark.parametrize(("case_name", "method"), CASE_METHODS)
def test_inject_identity_then_every_trainable_tensor_moves(case_name: str, method: str) -> None:
    case = CASES[case_name]
    model, batch = case.build(0), case.inputs()
    with torch.no_grad():
        before_output = case.run(model, batch)
    report = inject(model, small_settings(method))
    with torch.no_grad():
        after_output = case.run(model, batch)
    if method != "prompt":  # prompts add attended tokens, so they cannot be the identity
        # Not bit-exact: torch picks other CPU matmul kernels once weights stop requiring grad (~2e-7).
        torch.testing.assert_close(after_output, before_output, rtol=0, atol=1e-6, msg=method)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert set(trainable) == set(report.trainable) and trainable
    assert report.count == count_parameters(model)
    train_steps(case, model)
    still = [n for n, p in model.named_parameters() if n in trainable and torch.equal(p, trainable[n])]
    assert not still, f"{method} on {case_name}: tensors that never moved: {still}"
    frozen_changed = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_changed


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("method", ADDING)
def test_only_adapter_parameters_train(case_name: str, method: str) -> None:
    model = CASES[case_name].build(0)
    report = inject(model, small_settings(method))
    owned = set(adapter_parameters(model))
    heads = {"new_head.weight", "new_head.bias"} if case_name == "host" else set()
    assert set(report.trainable) == owned | heads
    assert all(("lora_" in n) == (method == "lora") for n in owned)
    assert report.count.trainable < report.count.total / 3


def test_feed_forward_targets_of_the_stock_presets() -> None:
    bart, t5, torch_tf = (
        stock_targets(tiny_bart()),
        stock_targets(tiny_t5()),
        stock_targets(tiny_transformer()),
    )
    assert [t.pattern for t in bart.feed_forward] == [
        r"model\.encoder\.layers\.\d+\.fc2",
        r"model\.decoder\.layers\.\d+\.fc2",
    ]
    assert [t.stream for t in t5.feed_forward] == ["encoder", "decoder"]
    assert t5.feed_forward[1].pattern == r"decoder\.block\.\d+\.layer\.\d+\.DenseReluDense\.wo"
    assert [t.batch_first for t in torch_tf.feed_forward] == [False, False]
    assert stock_targets(tiny_transformer(batch_first=True)).feed_forward[0].batch_first
    model = tiny_t5()
    report = inject(model, "read")
    assert report.modules == (
        "encoder.block.0.layer.1.DenseReluDense.wo", "encoder.block.1.layer.1.DenseReluDense.wo",
        "decoder.block.0.layer.2.DenseReluDense.wo", "decoder.block.1.layer.2.DenseReluDense.wo",
    )  # fmt: skip
    assert isinstance(
        model.decoder.block[0].layer[2].DenseReluDense.wo, nn.Linear
    )  # stock module, same names
    assert "decoder.block.0.layer.2.DenseReluDense.wo.weight" in dict(model.named_parameters())


def test_nothing_matching_names_the_patterns_and_the_modules() -> None:
    targets = AdapterTargets(
        feed_forward=(FeedForwardTarget(r"transformer\.layers\.\d+\.ffn_out", "encoder", batch_first=True),),
        partial=(), projection=(), lora=(),
    )  # fmt: skip
    model = tiny_grounder()
    with pytest.raises(InvalidValueError) as info:
        inject(model, "read", targets=targets)
    message = str(info.value)
    assert r"'transformer\\.layers\\.\\d+\\.ffn_out'" in message and "layers.N.linear2" in message
    assert injection_of(model) is None and all(p.requires_grad for p in model.parameters())  # untouched
    with pytest.raises(InvalidValueError, match="declares no projection modules"):
        inject(tiny_transformer(), "proj")
    with pytest.raises(InvalidValueError, match="no stock stack readcli knows"):
        inject(nn.Sequential(nn.Linear(3, 3)), "read")


def test_bad_method_prompt_and_bias_refusals() -> None:
    with pytest.raises(InvalidValueError, match="unknown method 'readd': choose one of full, partial, bias"):
        inject(tiny_bart(), "readd")
    refused = tiny_bart()
    with pytest.raises(InvalidValueError, match="does not accept prompt tokens"):
        inject(refused, "prompt")
    assert "sequence_context" not in refused.__dict__ and all(p.requires_grad for p in refused.parameters())
    with pytest.raises(InvalidValueError, match="found no bias parameters in T5ForConditionalGeneration"):
        inject(tiny_t5(), "bias")
    model = tiny_bart()
    inject(model, "read")
    with pytest.raises(InvalidValueError, match="already has method 'read' injected"):
        inject(model, "lora")
    with pytest.raises(InvalidValueError, match="differs from the settings' method"):
        inject(tiny_bart(), "read", method_settings("lora"))


def test_backbone_methods_report_the_modules_they_train() -> None:
    assert inject(tiny_bart(), "partial").modules == ("model.encoder.layers.1", "model.decoder.layers.1")
    assert inject(tiny_t5(), "proj").modules == ("lm_head",)
    assert inject(tiny_grounder(), "full").modules == ("",)
    bias = inject(tiny_transformer(), "bias")
    assert "encoder.layers.0.self_attn" in bias.modules and "decoder.norm" in bias.modules
    assert all(name.endswith(("bias", "in_proj_bias")) for name in bias.trainable)


def test_prompt_tokens_installed_where_the_host_reads_them() -> None:
    model = tiny_grounder()
    report = inject(model, method_settings("prompt", tokens=3))
    assert model.prompt_tokens.video.shape == (3, 6) and model.prompt_tokens.text.shape == (3, 5)
    assert set(report.trainable) == {
        "prompt_tokens.video",
        "prompt_tokens.text",
        "new_head.weight",
        "new_head.bias",
    }


def _left_padded_batch(pad_token: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, VOCAB, (2, 6), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0
    ids[1, :2] = pad_token
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("build", [tiny_bart, tiny_t5])
def test_stock_encoders_publish_padding_so_left_padding_cannot_leak(build: object) -> None:
    model = build()  # type: ignore[operator]
    inject(model, method_settings("read", bottleneck=4))
    for parameter in adapter_parameters(model).values():
        nn.init.normal_(parameter, std=0.3)
    encoder = model.get_encoder()
    with torch.no_grad():
        first = encoder(**_left_padded_batch(4)).last_hidden_state
        second = encoder(**_left_padded_batch(40)).last_hidden_state
    assert torch.equal(first[1, 2:], second[1, 2:])
    assert torch.equal(first[0], second[0])


def test_torch_fast_path_does_not_bypass_adapters() -> None:
    for method in ADDING:
        model = tiny_transformer(batch_first=True)
        inject(model, small_settings(method))
        for parameter in model.parameters():
            if parameter.requires_grad:
                nn.init.normal_(parameter, std=0.3)
        src, tgt = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
        padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
        with torch.no_grad():
            fast = model(src, tgt, src_key_padding_mask=padding, memory_key_padding_mask=padding)
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                slow = model(src, tgt, src_key_padding_mask=padding, memory_key_padding_mask=padding)
            finally:
                torch.backends.mha.set_fastpath_enabled(True)
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5, msg=method)


def test_read_in_a_decoder_refuses_a_kv_cache_and_generates_without_one() -> None:
    model = tiny_bart()
    inject(model, method_settings("read", bottleneck=4))
    for parameter in adapter_parameters(model).values():
        nn.init.normal_(parameter, std=0.3)
    ids = torch.randint(3, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    model.generation_config.forced_eos_token_id = None  # plain greedy: every token is an argmax
    model.generation_config.eos_token_id = None
    kwargs = {"max_new_tokens": 5, "do_sample": False}
    with pytest.raises(InvalidValueError, match="cannot run with a key-value cache.*use_cache=False"):
        model.generate(ids, use_cache=True, **kwargs)
    out = model.generate(ids, use_cache=False, **kwargs)
    assert out.shape == (2, 6)
    with torch.no_grad():  # every generated token is the argmax of one full teacher-forced pass
        logits = model(input_ids=ids, decoder_input_ids=out[:, :-1]).logits
    assert torch.equal(logits.argmax(-1), out[:, 1:])


def test_lora_uses_peft_on_a_custom_module() -> None:
    from peft.tuners.lora import Linear as LoraLinear

    model = tiny_grounder()
    report = inject(model, method_settings("lora", rank=2, alpha=4.0))
    assert isinstance(model.layers[0].linear1, LoraLinear)
    assert report.modules == ("layers.0.linear1", "layers.0.linear2", "layers.1.linear1", "layers.1.linear2")
    per_layer = 2 * (16 + 32) + 2 * (32 + 16)  # A (r x in) + B (out x r) for linear1 and linear2
    assert report.count.trainable == 2 * per_layer + 16 * 2 + 2  # + the new head


def test_parameter_accounting_and_paper_style() -> None:
    count = ParameterCount(trainable=1_170_000, total=249_000_000)
    assert count.paper_style() == "1.17 M / 0.47 %"
    assert "1,170,000 of 249,000,000" in str(count)
    assert ParameterCount(0, 0).percent == 0.0


def _bart_base_config() -> Any:
    from transformers import BartConfig

    return BartConfig(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
    )  # fmt: skip


@pytest.mark.parametrize(("rnn", "gates"), [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_read_count_on_a_bart_base_sized_model(rnn: str, gates: int) -> None:
    from transformers import BartForConditionalGeneration

    with torch.device("meta"):  # sizes only: no memory, no download
        model = BartForConditionalGeneration(_bart_base_config())
    total_before = count_parameters(model).total
    report = inject(model, method_settings("read", bottleneck=59, rnn=rnn))
    d, k = 768, 59
    per_block = 2 * d * k + gates * (2 * k * k + 2 * k)  # W_down, W_up, RNN (W_ih, W_hh, b_ih, b_hh)
    assert report.count.trainable == 12 * per_block
    assert report.count.total == total_before + 12 * per_block
    assert 139_000_000 < total_before < 140_500_000  # bart-base's size
