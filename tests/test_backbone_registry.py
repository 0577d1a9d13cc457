"""Backbone loading: safe unpickling, layout checks, readcli's own format, and preset resolution."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from readcli.backbones import registry
from readcli.backbones.moment_detr.config import MomentDETRConfig, tiny_moment_detr_config
from readcli.backbones.moment_detr.model import MomentDETR, build_moment_detr
from readcli.backbones.registry import (
    PRESETS,
    build_backbone,
    load_backbone,
    load_card,
    resolve_weights,
    save_backbone,
)
from readcli.errors import CheckpointError, InvalidValueError


class _RunsCode:
    """Unpickling this would call os.system and create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _tiny() -> MomentDETR:
    torch.manual_seed(0)
    return build_moment_detr(tiny_moment_detr_config()).eval()


def _save_official(path: Path, state: dict[str, torch.Tensor], options: dict[str, Any], **kw: Any) -> Path:
    torch.save({"model": state, "opt": argparse.Namespace(**options), "epoch": 3}, path, **kw)
    return path


def _batch(cfg: MomentDETRConfig) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "src_txt": torch.randn(2, 4, cfg.t_feat_dim, generator=gen),
        "src_txt_mask": torch.ones(2, 4),
        "src_vid": torch.randn(2, 6, cfg.v_feat_dim, generator=gen),
        "src_vid_mask": torch.ones(2, 6),
    }


# --- safe loading --------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused_before_running(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "model_best.ckpt"
    torch.save(
        {"model": {}, "opt": _RunsCode(marker)}, path, _use_new_zipfile_serialization=zip_format
    )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"refused to unpickle: it needs posix\.system") as info:
        load_backbone(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "safetensors", "json", "empty"])
def test_files_that_are_not_checkpoints_give_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.ckpt"
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "truncated":
        full = _save_official(tmp_path / "full.ckpt", _tiny().state_dict(), _tiny().config.to_dict())
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    elif kind == "safetensors":
        save_file({"weight": torch.zeros(3)}, str(path))
    elif kind == "json":
        path.write_text(json.dumps({"model": {}, "opt": {}}))
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_backbone(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400
    assert "weights_only` set to `False`" not in message  # never advise the unsafe load


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_weights_and_config_files_alone_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_text("{}")
    with pytest.raises(
        CheckpointError, match="saved-backbone directory with config.json and model.safetensors"
    ):
        load_backbone(path)


def test_state_dict_mismatches_are_named_with_counts(tmp_path: Path) -> None:
    model = _tiny()
    state = dict(model.state_dict())
    del state["saliency_proj.weight"], state["class_embed.bias"]
    state["extra_head.weight"] = torch.zeros(1)
    state["query_embed.weight"] = torch.zeros(7, 32)
    path = _save_official(tmp_path / "bad.ckpt", state, model.config.to_dict())
    with pytest.raises(CheckpointError) as info:
        load_backbone(path)
    message = str(info.value)
    assert "2 missing key(s): class_embed.bias; saliency_proj.weight" in message
    assert "1 unexpected key(s): extra_head.weight" in message
    assert "1 mis-shaped key(s): query_embed.weight (7, 32) (expected (5, 32))" in message


def test_checkpoint_with_an_unknown_option_is_refused(tmp_path: Path) -> None:
    model = _tiny()
    options = {**model.config.to_dict(), "use_audio_branch": True, "lr": 1e-4}
    path = _save_official(tmp_path / "odd.ckpt", model.state_dict(), options)
    with pytest.raises(CheckpointError, match="odd.ckpt: unknown Moment-DETR option.*use_audio_branch"):
        load_backbone(path)


def test_official_tiny_checkpoint_loads_with_training_state(tmp_path: Path) -> None:
    model = _tiny()
    options = {**model.config.to_dict(), "device": torch.device("cpu"), "results_dir": "x", "bsz": 32}
    state = model.state_dict()
    path = tmp_path / "model_best.ckpt"
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save(
        {"model": state, "optimizer": optimizer.state_dict(), "opt": argparse.Namespace(**options)}, path
    )
    loaded = load_backbone(path)
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch)["pred_spans"], model(**batch)["pred_spans"])


# --- readcli's own format ------------------------------------------------------------------------


def test_save_and_load_round_trip_without_pickles(tmp_path: Path) -> None:
    model = _tiny()
    directory = save_backbone(model, tmp_path / "saved")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((directory / "config.json").read_text())
    assert meta["architecture"] == "moment_detr" and meta["format"] == "readcli-backbone"
    assert MomentDETRConfig.from_dict(meta["config"]) == model.config
    assert b"\x80\x02" not in (directory / "model.safetensors").read_bytes()[:16]  # no pickle header
    loaded = load_backbone(directory)
    assert isinstance(loaded, MomentDETR) and not loaded.training
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    batch = _batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch)["saliency_scores"], model(**batch)["saliency_scores"])


def test_saved_directory_problems_are_named(tmp_path: Path) -> None:
    directory = save_backbone(_tiny(), tmp_path / "saved")
    meta = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "gate": 1}}))
    with pytest.raises(CheckpointError, match=r"config\.json: unknown Moment-DETR config key\(s\) gate"):
        load_backbone(directory)
    (directory / "config.json").write_text(json.dumps({**meta, "architecture": "umt9"}))
    with pytest.raises(CheckpointError, match="architecture 'umt9'; choices: moment_detr"):
        load_backbone(directory)
    (directory / "config.json").write_text(json.dumps(meta))
    (directory / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_backbone(directory)


def test_save_refuses_a_model_with_prompts_attached(tmp_path: Path) -> None:
    model = _tiny()
    prompts = nn.Module()
    prompts.video = nn.Parameter(torch.zeros(2, 32))
    prompts.text = nn.Parameter(torch.zeros(2, 32))
    model.prompt_tokens = prompts
    with pytest.raises(CheckpointError, match="2 unexpected key.*prompt_tokens.text"):
        save_backbone(model, tmp_path / "saved")
    assert not (tmp_path / "saved" / "config.json").exists()


def test_build_backbone() -> None:
    assert isinstance(build_backbone(tiny_moment_detr_config()), MomentDETR)
    with pytest.raises(InvalidValueError, match="no backbone builds from a str"):
        build_backbone("moment-detr-clip")


# --- presets -------------------------------------------------------------------------------------


def test_cards_parse_and_match_the_official_configuration(shared_data: Path) -> None:
    for name in PRESETS:
        card = load_card(name)
        assert card.name == name and card.file_name and card.env_var.startswith("READCLI_")
    card = load_card("moment-detr-clip")
    official = MomentDETRConfig.from_opt_json(shared_data / "moment_detr" / "clip_only_opt.json")
    assert MomentDETRConfig.from_dict(card.configuration) == official
    assert card.raw["features"]["video"]["dim"] == 514 and card.raw["features"]["max_v_l"] == 75
    assert {p.suffix for p in registry.MODELS_DIR.iterdir()} == {".json"}  # cards only, no weights


def test_missing_preset_weights_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path))
    monkeypatch.delenv("READCLI_MOMENT_DETR_CLIP", raising=False)
    with pytest.raises(CheckpointError) as info:
        load_backbone("moment-detr-clip")
    message = str(info.value)
    assert str(tmp_path / "moment-detr-clip" / "model_best.ckpt") in message
    assert "READCLI_MOMENT_DETR_CLIP" in message
    assert "github.com/jayleicn/moment_detr" in message
    monkeypatch.setenv("READCLI_MOMENT_DETR_CLIP", str(tmp_path / "elsewhere.ckpt"))
    with pytest.raises(CheckpointError, match=r"READCLI_MOMENT_DETR_CLIP=.*elsewhere\.ckpt"):
        load_backbone("moment-detr-clip")


def test_preset_resolves_to_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path))
    monkeypatch.delenv("READCLI_MOMENT_DETR_CLIP", raising=False)
    (tmp_path / "moment-detr-clip").mkdir()
    (tmp_path / "moment-detr-clip" / "model_best.ckpt").symlink_to(
        shared_data / "moment_detr" / "parity_model.ckpt"
    )
    model = load_backbone("moment-detr-clip")
    assert isinstance(model, MomentDETR) and model.config.num_queries == 10
    monkeypatch.setenv(
        "READCLI_MOMENT_DETR_CLIP", str(tmp_path / "moment-detr-clip")
    )  # a directory works too
    assert resolve_weights(load_card("moment-detr-clip")).name == "model_best.ckpt"
    # Another Moment-DETR at the preset's place is refused: it is not that preset's model.
    tiny = _tiny()
    monkeypatch.setenv("READCLI_MOMENT_DETR_CLIP", str(_save_official(tmp_path / "t.ckpt", tiny.state_dict(),
                                                                      tiny.config.to_dict())))  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"is not the moment-detr-clip checkpoint: hidden_dim=32 \(card: 256\)"
    ):
        load_backbone("moment-detr-clip")


def test_feature_extractor_preset_and_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        InvalidValueError, match="clip-vit-b-32 is a clip feature extractor.*moment-detr-clip"
    ):
        load_backbone("clip-vit-b-32")
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path))
    monkeypatch.delenv("READCLI_CLIP_VIT_B_32", raising=False)
    card = load_card("clip-vit-b-32")
    with pytest.raises(CheckpointError, match="openaipublic.azureedge.net"):
        resolve_weights(card)
    (tmp_path / "clip-vit-b-32").mkdir()
    (tmp_path / "clip-vit-b-32" / "ViT-B-32.pt").write_bytes(b"partial download")
    with pytest.raises(CheckpointError, match="sha256 .* does not match preset clip-vit-b-32"):
        resolve_weights(card)


def test_unknown_name_lists_the_presets(tmp_path: Path) -> None:
    presets = r"\(bart-base-vg, moment-detr-clip, t5-base-vg, umt, umt-s, umt-s-scratch\)"  # backbones only
    refused = "'moment-detr-slowfast' is neither a backbone preset " + presets
    with pytest.raises(CheckpointError, match=refused):
        load_backbone("moment-detr-slowfast")
    with pytest.raises(
        InvalidValueError, match="unknown backbone preset 'x'; choices: moment-detr-clip, umt,"
    ):
        load_card("x")
