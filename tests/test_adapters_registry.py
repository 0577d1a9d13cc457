"""The method registry: settings as a tagged union, bundles written by earlier readcli, (IA)^3, and the
backbone side of the contract importing nothing from the adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_adapters_hosts import CASES, tiny_bart, tiny_grounder, tiny_transformer, train_steps
from torch import nn

from readcli.adapters.bundle import CONFIG_FILE, load_bundle, read_bundle_config, save_bundle
from readcli.adapters.inject import adapter_parameters, inject
from readcli.adapters.method import MethodConfig
from readcli.adapters.methods.ia3 import IA3Config, IA3Scaling
from readcli.adapters.registry import METHOD_SPECS
from readcli.adapters.settings import method_settings, settings_from_dict
from readcli.backbones.contract import AdapterTargets, FeedForwardTarget
from readcli.errors import BundleError, InvalidValueError

# what `MethodSettings.to_dict()` wrote before the registry: every method's knobs, always
OLD_DEFAULTS = {
    "bottleneck": None, "rnn": "rnn", "lora_rank": 8, "lora_alpha": 16.0, "prompt_tokens": 10, "dropout": 0.0,
}  # fmt: skip


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        (
            {"method": "read", **OLD_DEFAULTS, "bottleneck": 4, "rnn": "gru"},
            ("read", {"bottleneck": 4, "rnn": "gru"}),
        ),
        ({"method": "adapter", **OLD_DEFAULTS, "dropout": 0.1}, ("adapter", {"dropout": 0.1})),
        (
            {"method": "lora", **OLD_DEFAULTS, "lora_rank": 2, "lora_alpha": 4.0},
            ("lora", {"rank": 2, "alpha": 4.0}),
        ),
        ({"method": "prompt", **OLD_DEFAULTS, "prompt_tokens": 3}, ("prompt", {"tokens": 3})),
        ({"method": "bias", **OLD_DEFAULTS}, ("bias", {})),
    ],
)
def test_flat_settings_of_earlier_bundles_give_the_same_method_config(
    old: dict[str, object], expected: tuple[str, dict[str, object]]
) -> None:
    method, knobs = expected
    settings = settings_from_dict(old)
    assert settings == method_settings(method, **knobs)
    assert settings_from_dict(settings.to_dict()) == settings  # the tagged form round-trips


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "read", "lora_rank": 2}, "lora_rank is not a setting of method 'read'"),
        (
            {"method": "lora", "bottleneck": 4},
            "bottleneck is not a setting of method 'lora': its settings are rank",
        ),
        ({"method": "full", "dropout": 0.2}, "dropout is not a setting of method 'full': it has no settings"),
        ({"method": "lora", "rank": 4}, "a setting is given twice, under its old and its new name"),
    ],
)
def test_flat_settings_with_another_methods_value_are_refused(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message) as info:
        settings_from_dict({**OLD_DEFAULTS, **change})
    assert "\n" not in str(info.value)


def test_a_bundle_written_in_the_flat_form_still_loads(tmp_path: Path) -> None:
    case = CASES["host"]
    model = case.build(0)
    inject(model, method_settings("lora", rank=2))
    train_steps(case, model)
    save_bundle(model, tmp_path, backbone_name="tiny-host", task="test")
    raw = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert raw["method"] == {"method": "lora", "rank": 2, "alpha": 16.0, "dropout": 0.0}  # the tagged form
    raw["method"] = {"method": "lora", **OLD_DEFAULTS, "lora_rank": 2}  # as the previous readcli wrote it
    (tmp_path / CONFIG_FILE).write_text(json.dumps(raw))
    assert read_bundle_config(tmp_path).settings == method_settings("lora", rank=2)
    fresh = case.build(0)
    load_bundle(fresh, tmp_path, backbone_name="tiny-host", task="test")
    batch = case.inputs()
    with torch.no_grad():
        assert torch.equal(case.run(model, batch), case.run(fresh, batch))
    raw["method"]["rnn"] = "gru"  # a READ knob on a LoRA bundle: refused, not ignored
    (tmp_path / CONFIG_FILE).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="bad method settings: rnn is not a setting of method 'lora'"):
        read_bundle_config(tmp_path)


def test_every_registered_method_is_one_module_with_a_frozen_config() -> None:
    for name, spec in METHOD_SPECS.items():
        assert spec.name == name == spec.config.method
        assert issubclass(spec.config, MethodConfig)
        assert (
            spec.install.__module__ == spec.config.__module__
            or spec.plan.__module__ == spec.config.__module__
        )
        settings = method_settings(name)
        with pytest.raises(AttributeError):
            settings.method = "other"  # type: ignore[misc]  # frozen: the tag cannot change


def test_ia3_starts_as_ones_and_counts_keys_values_and_inner_activations() -> None:
    model = tiny_grounder()  # 2 layers, d 16, feed-forward 32, packed nn.MultiheadAttention
    report = inject(model, "ia3")
    assert report.settings == IA3Config()
    vectors = {n: p for n, p in adapter_parameters(model).items()}
    assert set(vectors) == {
        "layers.0.self_attn.ia3.scale", "layers.1.self_attn.ia3.scale",
        "layers.0.linear2.ia3.scale", "layers.1.linear2.ia3.scale",
    }  # fmt: skip
    assert all(torch.equal(v, torch.ones_like(v)) for v in vectors.values())
    assert report.count.trainable == 2 * (2 * 16 + 32) + (16 * 2 + 2)  # + the host's new head
    # the stored attention weights are untouched: only the forward sees them rescaled
    assert isinstance(model.layers[0].self_attn.in_proj_weight, nn.Parameter)


def test_ia3_rescales_exactly_keys_values_and_the_inner_activation() -> None:
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2)
    reference = nn.MultiheadAttention(8, 2)
    reference.load_state_dict(attention.state_dict())
    model = nn.Module()
    model.add_module("attn", attention)
    model.add_module("ffn", nn.Linear(4, 8))
    targets = AdapterTargets(
        feed_forward=(FeedForwardTarget("ffn", "encoder", batch_first=True),),
        partial=(), projection=(), lora=(), key_value=("attn",),
    )  # fmt: skip
    inject(model, "ia3", targets=targets)
    key, value = torch.rand(8) + 0.5, torch.rand(8) + 0.5
    with torch.no_grad():
        attention.ia3.scale.copy_(torch.cat([key, value]))
        model.ffn.ia3.scale.copy_(torch.arange(1.0, 5.0))
        rows = torch.cat([torch.ones(8), key, value])
        reference.in_proj_weight.mul_(rows.unsqueeze(1))
        reference.in_proj_bias.mul_(rows)
    x = torch.randn(5, 3, 8)  # (T, B, d)
    with torch.no_grad():
        torch.testing.assert_close(attention(x, x, x)[0], reference(x, x, x)[0], rtol=0, atol=1e-6)
        inner = torch.randn(3, 4)
        expected = nn.functional.linear(inner * torch.arange(1.0, 5.0), model.ffn.weight, model.ffn.bias)
        torch.testing.assert_close(model.ffn(inner), expected)
    assert "in_proj_weight" not in attention.__dict__  # the rescaled copy is gone after the forward
    attention.ia3.scale.requires_grad_(True)
    attention(x, x, x)[0].sum().backward()
    assert attention.ia3.scale.grad is not None and attention.in_proj_weight.grad is None


def test_ia3_refusals_name_the_module() -> None:
    targets = AdapterTargets(
        feed_forward=(FeedForwardTarget(r"layers\.\d+\.linear2", "encoder", batch_first=False),),
        partial=(), projection=(), lora=(),
    )  # fmt: skip
    with pytest.raises(InvalidValueError, match="declares no attention key/value modules"):
        inject(tiny_grounder(), "ia3", targets=targets)
    model = tiny_transformer()
    report = inject(model, "ia3")
    assert (
        "encoder.layers.0.self_attn" in report.modules and "decoder.layers.1.multihead_attn" in report.modules
    )
    assert sum(isinstance(m, IA3Scaling) for m in model.modules()) == len(report.modules)
    assert inject(tiny_bart(), "ia3").modules[0] == "model.encoder.layers.0.self_attn.k_proj"


@pytest.mark.parametrize("case_name", ["bart", "host"])  # linear and packed key/value targets
def test_ia3_trains_under_bf16_autocast(case_name: str) -> None:
    case = CASES[case_name]
    model = case.build(0)
    inject(model, "ia3")
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = case.run(model, case.inputs())
    out.float().sum().backward()
    vectors = adapter_parameters(model)
    assert vectors and all(v.grad is not None and v.dtype == torch.float32 for v in vectors.values())
