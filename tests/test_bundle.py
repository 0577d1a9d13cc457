"""Adapter bundles: round trips on stock and readcli backbones, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_adapters_hosts import (
    CASES,
    small_settings,
    tiny_bart,
    tiny_grounder,
    tiny_t5,
    tiny_transformer,
    train_steps,
)

from readcli.adapters import fingerprint as fingerprint_module
from readcli.adapters.bundle import CONFIG_FILE, WEIGHTS_FILE, load_bundle, read_bundle_config, save_bundle
from readcli.adapters.fingerprint import fingerprint, frozen_tensors
from readcli.adapters.inject import adapter_parameters, inject, planned_backbone_parameters
from readcli.adapters.registry import METHODS
from readcli.adapters.settings import method_settings
from readcli.backbones.stock import stock_targets
from readcli.errors import BundleError, InputFileError, InvalidValueError

ROUND_TRIPS = (
    [("bart", m) for m in METHODS if m != "prompt"]
    + [("t5", m) for m in ("read", "lora", "adapter", "partial")]
    + [("torch", m) for m in ("read", "lora", "adapter", "bias")]
    + [("host", m) for m in METHODS]
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


def _trained_bundle(case_name: str, method: str, directory: Path) -> torch.nn.Module:
    case = CASES[case_name]
    model = case.build(0)
    inject(model, small_settings(method))
    train_steps(case, model)
    save_bundle(
        model, directory, backbone_name=f"tiny-{case_name}", task="test", extra_config={"features": {"d": 5}}
    )
    return model


@pytest.mark.parametrize(("case_name", "method"), ROUND_TRIPS)
def test_round_trip_gives_identical_outputs_and_holds_no_frozen_tensor(
    case_name: str, method: str, tmp_path: Path
) -> None:
    case = CASES[case_name]
    trained = _trained_bundle(case_name, method, tmp_path)
    fresh = case.build(0)
    loaded = load_bundle(fresh, tmp_path, backbone_name=f"tiny-{case_name}", task="test")
    batch = case.inputs()
    with torch.no_grad():
        assert torch.equal(case.run(trained, batch), case.run(fresh, batch))
        assert not torch.equal(case.run(case.build(0), batch), case.run(fresh, batch))  # the bundle matters
    stored = load_file(tmp_path / WEIGHTS_FILE)
    trainable = {n for n, p in fresh.named_parameters() if p.requires_grad}
    assert set(stored) == trainable == set(loaded.report.trainable)
    if method in ("lora", "adapter", "read", "prompt", "ia3"):  # only adapters (and the host's new head)
        assert set(stored) - set(adapter_parameters(fresh)) <= {"new_head.weight", "new_head.bias"}
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert config["method"]["method"] == method and config["extra"] == {"features": {"d": 5}}
    assert config["backbone"]["fingerprint"].startswith("blake2b-256:")


def test_config_records_what_architecture_md_asks(tmp_path: Path) -> None:
    _trained_bundle("bart", "read", tmp_path)
    config = read_bundle_config(tmp_path)
    assert (config.settings.to_dict()["bottleneck"], config.task) == (4, "test")
    assert config.settings == method_settings("read", bottleneck=4)
    assert config.architecture == "BartForConditionalGeneration"
    assert config.backbone_extra["preset"] == "hf-bart" and config.backbone_extra["encoder.d_model"] == "32"
    raw = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert {
        "format",
        "format_version",
        "readcli_version",
        "method",
        "task",
        "backbone",
        "extra",
        "weights",
    } <= set(raw)


def test_another_backbone_is_refused_before_the_model_changes(tmp_path: Path) -> None:
    _trained_bundle("bart", "read", tmp_path)
    t5 = tiny_t5()
    with pytest.raises(
        BundleError, match="made for backbone 'tiny-bart' .BartForConditionalGeneration.; this model is a T5"
    ):
        load_bundle(t5, tmp_path)
    assert all(p.requires_grad for p in t5.parameters())  # untouched
    with pytest.raises(BundleError, match="not for backbone 'bart-base'"):
        load_bundle(tiny_bart(), tmp_path, backbone_name="bart-base")
    with pytest.raises(BundleError, match="trained for task 'test', not 'grounding'"):
        load_bundle(tiny_bart(), tmp_path, task="grounding")
    other_weights = tiny_bart(seed=1)
    with pytest.raises(BundleError, match="frozen weights of this BartForConditionalGeneration differ"):
        load_bundle(other_weights, tmp_path)
    assert all(p.requires_grad for p in other_weights.parameters())


def test_another_size_is_refused_naming_the_difference(tmp_path: Path) -> None:
    _trained_bundle("host", "read", tmp_path)
    from test_adapters_hosts import TinyGrounder

    with pytest.raises(BundleError, match="d: bundle '16', model '24'"):
        load_bundle(TinyGrounder(d=24), tmp_path)


def _rewrite_weights(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the tensors and re-sign them in the config, as a buggy or foreign writer would."""
    save_file(tensors, directory / WEIGHTS_FILE)
    data = (directory / WEIGHTS_FILE).read_bytes()
    import hashlib

    config = json.loads((directory / CONFIG_FILE).read_text())
    config["weights"].update(blake2b=hashlib.blake2b(data, digest_size=32).hexdigest(), bytes=len(data))
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def test_missing_extra_misshaped_and_wrong_dtype_keys_are_named(tmp_path: Path) -> None:
    _trained_bundle("host", "read", tmp_path)
    good = load_file(tmp_path / WEIGHTS_FILE)
    name = "layers.0.linear2.adapter.up.weight"
    broken = dict(good)
    del broken[name]
    broken["layers.0.linear2.adapter.extra"] = torch.zeros(2)
    broken["layers.1.linear2.adapter.down.weight"] = torch.zeros(3, 16)
    broken["new_head.bias"] = good["new_head.bias"].double()
    _rewrite_weights(tmp_path, broken)
    with pytest.raises(BundleError) as info:
        load_bundle(tiny_grounder(), tmp_path)
    message = str(info.value)
    assert f"missing keys (1) {name}" in message
    assert "unexpected keys (1) layers.0.linear2.adapter.extra" in message
    assert "layers.1.linear2.adapter.down.weight (3, 16) vs (4, 16)" in message
    assert "new_head.bias torch.float64 vs torch.float32" in message


def test_corrupt_truncated_and_half_written_bundles_are_refused(tmp_path: Path) -> None:
    _trained_bundle("host", "adapter", tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="corrupt, truncated or half-written"):
        load_bundle(tiny_grounder(), tmp_path)
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(BundleError, match="corrupt, truncated or half-written"):
        load_bundle(tiny_grounder(), tmp_path)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / CONFIG_FILE).write_text((tmp_path / CONFIG_FILE).read_text())
    _rewrite_weights(garbage, {})
    (garbage / WEIGHTS_FILE).write_bytes(b"\xff" * 64)
    _resign(garbage)
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        load_bundle(tiny_grounder(), garbage)


def _resign(directory: Path) -> None:
    import hashlib

    data = (directory / WEIGHTS_FILE).read_bytes()
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["weights"].update(blake2b=hashlib.blake2b(data, digest_size=32).hexdigest(), bytes=len(data))
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def test_a_save_cut_short_keeps_the_previous_bundle_or_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import readcli.adapters.bundle as bundle_module

    _trained_bundle("host", "read", tmp_path / "old")  # an earlier bundle in the same folder

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "atomic_write_json", crash)
    with pytest.raises(OSError):
        _trained_bundle("host", "adapter", tmp_path / "old")  # new weights written, config not
    with pytest.raises(OSError):
        _trained_bundle("host", "adapter", tmp_path / "new")
    monkeypatch.undo()
    loaded = load_bundle(tiny_grounder(), tmp_path / "old")  # the earlier bundle, whole
    assert loaded.config.settings.method == "read"
    with pytest.raises(BundleError, match="no adapter bundle at .*new: adapter_config.json not found"):
        load_bundle(tiny_grounder(), tmp_path / "new")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(format_version=99), "format version 99; this readcli .* reads version 1"),
        (lambda c: c.update(format="something"), "is not a readcli adapter config"),
        (
            lambda c: c["method"].update(rank=3),
            "bad method settings: rank is not a setting of method 'read': its settings are bottleneck",
        ),
        (lambda c: c["method"].update(width=3), "bad method settings: unknown method setting 'width'"),
        (lambda c: c["method"].update(method="magic"), "unknown method 'magic'"),
        (lambda c: c.pop("task"), "adapter_config.json: missing field 'task'"),
        (lambda c: c["method"].update(bottleneck=10**12), "bottleneck k = 1000000000000 is invalid"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, edit: object, message: str) -> None:
    _trained_bundle("host", "read", tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    edit(config)  # type: ignore[operator]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match=message):
        load_bundle(tiny_grounder(), tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="adapter_config.json: not valid JSON"):
        load_bundle(tiny_grounder(), tmp_path)


def test_save_needs_an_injected_model_and_json_extra(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="needs a model prepared by"):
        save_bundle(tiny_grounder(), tmp_path, backbone_name="x", task="t")
    model = tiny_grounder()
    inject(model, "read")
    with pytest.raises(InvalidValueError, match="JSON-serialisable"):
        save_bundle(model, tmp_path, backbone_name="x", task="t", extra_config={"f": object()})
    with pytest.raises(InvalidValueError, match="differ from the injected ones"):
        save_bundle(
            model, tmp_path, backbone_name="x", task="t", method_settings=method_settings("read", rnn="gru")
        )
    save_bundle(model, tmp_path, backbone_name="x", task="t", method_settings=method_settings("read"))
    with pytest.raises(InvalidValueError, match="needs a fresh backbone"):
        load_bundle(model, tmp_path)


def test_fingerprint_ignores_lora_wrappers_and_sees_one_changed_value() -> None:
    plain = tiny_bart()
    targets = stock_targets(plain)
    settings = method_settings("lora", rank=2)
    before = fingerprint(
        frozen_tensors(plain, planned_backbone_parameters(plain, settings, targets).values())
    )
    inject(plain, settings)
    trainable = [p for p in plain.parameters() if p.requires_grad]
    assert fingerprint(frozen_tensors(plain, trainable)) == before  # 'base_layer' names are canonical
    with torch.no_grad():
        plain.model.encoder.layers[1].fc1.weight[3, 2] += 1e-3
    assert fingerprint(frozen_tensors(plain, trainable)) != before


def test_fingerprint_cache_hashes_a_source_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_transformer()
    checkpoint = tmp_path / "backbone.pt"
    torch.save(model.state_dict(), checkpoint)
    tensors = frozen_tensors(model, [])
    calls: list[int] = []
    real = fingerprint_module.compute_fingerprint

    def counting(t: object, **kwargs: object) -> str:
        calls.append(1)
        return real(t, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprint_module, "compute_fingerprint", counting)
    first = fingerprint(tensors, source=checkpoint)
    assert fingerprint(tensors, source=checkpoint) == first == real(tensors)
    assert len(calls) == 1
    torch.save(model.state_dict(), checkpoint)  # rewritten: new mtime, so hashed again
    import os

    os.utime(checkpoint, ns=(1, 1))
    assert fingerprint(tensors, source=checkpoint) == first and len(calls) == 2
    (tmp_path / "cache" / "fingerprints.json").write_text("{damaged")
    assert fingerprint(tensors, source=checkpoint) == first  # a damaged cache is only a cache miss
    with pytest.raises(InputFileError, match="does not exist"):
        fingerprint(tensors, source=tmp_path / "missing.pt")
