"""`readcli models` and the "weights not found" messages that name `readcli download`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readcli.cli import app
from readcli.errors import CheckpointError, OfflineError

runner = CliRunner()


@pytest.fixture(autouse=True)
def _empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for variable in (
        "READCLI_MOMENT_DETR_CLIP",
        "READCLI_CLIP_VIT_B_32",
        "READCLI_UMT_S",
        "READCLI_WEIGHTS_MIRROR",
    ):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "cache"


def _listing() -> dict[str, dict[str, object]]:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    return {row["preset"]: row for row in json.loads(result.stdout)}


def test_every_preset_lists_its_weights_with_source_licence_and_digest() -> None:
    rows = _listing()
    assert sorted(rows) == ["bart-base-vg", "clip-vit-b-32", "moment-detr-clip", "t5-base-vg", "umt-s"]
    detr = rows["moment-detr-clip"]
    files = detr["files"]
    assert isinstance(files, list)
    assert [(f["file"], f["role"], f["state"]) for f in files] == [
        ("model_best.ckpt", "backbone", "missing"),
        ("ViT-B-32.pt", "CLIP", "missing"),
    ]
    assert files[0]["source"].endswith(
        "/jayleicn/moment_detr/raw/main/run_on_video/moment_detr_ckpt/model_best.ckpt"
    )
    assert files[0]["git_blob_sha1"] == "a32f31e37f885e24578a97eb0771a306725edef1"
    assert files[1]["sha256"] == "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
    assert files[1]["license"] == "MIT" and detr["download"] == "readcli download moment-detr-clip"
    t5 = rows["t5-base-vg"]["files"]
    assert isinstance(t5, list) and t5[0]["kind"] == "hub" and t5[0]["source"] == "t5-base"
    assert rows["umt-s"]["aliases"] == ["umt"] and rows["umt-s"]["fresh_presets"] == ["umt-s-scratch"]


def test_a_file_in_place_is_present_where_the_loader_looks_and_checked(_empty_caches: Path) -> None:
    from readcli.backbones.presets import load_card, resolve_weights

    target = _empty_caches / "moment-detr-clip" / "model_best.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the official checkpoint")
    assert resolve_weights(load_card("moment-detr-clip")) == target  # the place `download` writes to
    files = _listing()["moment-detr-clip"]["files"]
    assert isinstance(files, list) and files[0]["state"] == "damaged" and files[0]["path"] == str(target)
    assert "git blob sha1" in files[0]["problem"]
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0
    assert "damaged" in table.stdout
    assert "Get what is missing: readcli download bart-base-vg clip-vit-b-32 moment-detr-clip t5-base-vg" in (
        table.stdout
    )


def test_weights_not_found_names_the_download_command() -> None:
    from readcli.backbones.presets import load_card, resolve_weights

    with pytest.raises(
        CheckpointError, match=r"weights not found at .*: run `readcli download moment-detr-clip`"
    ):
        resolve_weights(load_card("moment-detr-clip"))
    with pytest.raises(CheckpointError) as umt:  # one file per domain: the user picks it by hand
        resolve_weights(load_card("umt-s"))
    assert "readcli download" not in str(umt.value) and "one of the official files" in str(umt.value)


def test_clip_offline_names_the_download_command_and_finds_the_downloaded_file(_empty_caches: Path) -> None:
    from readcli.features import weights

    with pytest.raises(OfflineError, match=r"run `readcli download clip-vit-b-32` with a network"):
        weights.resolve_openai("ViT-B-32")
    copy = _empty_caches / "clip-vit-b-32" / "ViT-B-32.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"stands for OpenAI's file")
    assert weights.resolve_openai("ViT-B-32") == copy  # offline, from readcli's cache


def test_text_model_offline_names_readcli_download_and_hf_not_huggingface_cli() -> None:
    from readcli.backbones.vision_guided.checkpoint_io import load_vision_guided

    with pytest.raises(OfflineError) as info:
        load_vision_guided("bart-base-vg")
    message = str(info.value)
    assert "readcli download bart-base-vg" in message and "hf download facebook/bart-base" in message
    assert "huggingface-cli" not in message


def test_download_refuses_unknown_and_per_domain_presets() -> None:
    unknown = runner.invoke(app, ["download", "nope"])
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: unknown preset 'nope'; presets with weights: bart-base-vg, ")
    umt = runner.invoke(app, ["download", "umt"])
    assert umt.exit_code == 1 and "one official checkpoint per domain" in umt.stderr
    fresh = runner.invoke(app, ["download", "umt-s-scratch"])
    assert fresh.stderr == "error: preset umt-s-scratch is freshly initialised and needs no weights file\n"
