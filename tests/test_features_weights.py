"""CLIP weights: reading files safely, the cached digest, and `openai` offline or cached."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import readcli.features.weights as weights
from readcli.errors import InputFileError, InvalidValueError, OfflineError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "readcli-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's URL cache lives under ~/.cache/clip
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def _tensors() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}


def test_torch_file_plain_wrapped_and_dataparallel_prefixed(tmp_path: Path) -> None:
    for i, obj in enumerate(
        [
            _tensors(),
            {"state_dict": _tensors(), "epoch": 3},
            {f"module.{k}": v for k, v in _tensors().items()},
        ]
    ):
        path = tmp_path / f"w{i}.pt"
        torch.save(obj, path)
        loaded = weights.read_state_dict(path)
        assert sorted(loaded) == ["a.weight", "b"]
        assert torch.equal(loaded["a.weight"], _tensors()["a.weight"])


def test_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(_tensors(), str(path))
    assert sorted(weights.read_state_dict(path)) == ["a.weight", "b"]


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "cfg": os.path.join}, path)  # a callable: refused by weights_only
    with pytest.raises(InputFileError, match="not a readable weights file"):
        weights.read_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"PK\x03\x04broken zip"])
def test_garbage_weights_are_one_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=r"--clip-weights .*bad\.pt"):
        weights.read_state_dict(path)


def test_torchscript_archive_is_detected_and_read_without_its_setting_keys(tmp_path: Path) -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(2, 2)
            self.register_buffer("context_length", torch.tensor(77))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x)

    path = tmp_path / "ViT-B-32.pt"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(Tiny()), str(path))
    assert weights.is_torchscript_archive(path)
    assert sorted(weights.read_state_dict(path)) == ["proj.bias", "proj.weight"]
    plain = tmp_path / "plain.pt"
    torch.save(_tensors(), plain)
    assert not weights.is_torchscript_archive(plain)


def test_digest_is_cached_by_path_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    calls: list[Path] = []
    real = weights._sha256_of

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(weights, "_sha256_of", counting)
    first = weights.file_sha256(path)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert weights.file_sha256(path) == first and len(calls) == 1  # the second call hashed nothing
    path.write_bytes(b"abd")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert weights.file_sha256(path) != first and len(calls) == 2


def test_missing_weights_path_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"--clip-weights .*nope\.pt: file not found"):
        weights.resolve_weights(str(tmp_path / "nope.pt"), "ViT-B-32")
    with pytest.raises(InputFileError, match="is a directory"):
        weights.resolve_weights(str(tmp_path), "ViT-B-32")


def test_openai_offline_fails_at_once_naming_clip_weights_path() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest, as in CI
    import open_clip  # noqa: F401  (its import time is not the failure path's)

    start = time.perf_counter()
    with pytest.raises(OfflineError, match="--clip-weights PATH"):
        weights.resolve_weights("openai", "ViT-B-32")
    assert time.perf_counter() - start < 2.0


def test_openai_unreachable_hub_fails_fast_without_the_offline_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights, "_HUB_HOST", ("127.0.0.1", 9))  # nothing listens: refused at once
    import open_clip  # noqa: F401

    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"cannot be reached.*--clip-weights PATH"):
        weights.resolve_openai("ViT-B-32")
    assert time.perf_counter() - start < 5.0


def test_openai_uses_a_cached_hub_copy_offline(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"cached")
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")
    resolved = weights.resolve_weights("openai", "ViT-B-32")
    assert resolved.path.name == "open_clip_model.safetensors" and resolved.path.read_bytes() == b"cached"
    assert resolved.spec == "openai" and len(resolved.sha256) == 64


def test_openai_for_a_model_without_openai_weights_lists_the_ones_with() -> None:
    with pytest.raises(InvalidValueError, match=r"not offered for --clip-model ViT-S-32-alt.*ViT-B-32"):
        weights.resolve_openai("ViT-S-32-alt")


def test_a_damaged_weights_file_never_shows_torchs_advice(tmp_path: Path) -> None:
    """torch's loader text advises weights_only=False (running the file's code): never shown."""
    from readcli.errors import InputFileError
    from readcli.features.weights import read_state_dict

    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputFileError, match="not a readable weights file") as caught:
        read_state_dict(bad)
    assert "weights_only" not in str(caught.value) and "\n" not in str(caught.value)
