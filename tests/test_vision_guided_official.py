"""Official VG-GPLMs checkpoints and VG-T5 without an official fixture.

- Loading: Lightning `.ckpt` (`model.` prefix), plain state dicts, safetensors; files that need arbitrary
  unpickling are refused unless trusted; what the file cannot tell is checked against the shapes.
- VG-T5: the fused state equals the official forward written out here from src/models/modeling_t5.py's
  description (final RMS norm, then the fusion, then `custom_layer_norm`; the image transformer built and
  never called), and a T5 fixture in the official layout goes through test_vg_parity's checks unchanged.
Tiny models over the ByT5 tokenizer (tests/test_vision_guided.py). B batch, S tokens, T video rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_vg_parity import check_outputs, check_tokens, fixture_files, load_fixture, model_of
from test_vision_guided import _encoded, _randomise_fusion_output, inputs, tiny_vg
from torch.nn import functional as F
from typer.testing import CliRunner

from readcli.backbones.vision_guided.checkpoint_io import load_official_checkpoint
from readcli.backbones.vision_guided.config import GenerationSettings, VisionGuidedConfig
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq
from readcli.backbones.vision_guided.official import (
    official_state_dict,
    read_checkpoint,
    vision_guided_from_official,
)
from readcli.cli import app
from readcli.errors import CheckpointError

VIDEO = 16  # the image transformer's 8 heads divide it


def _official_t5_fusion(model: VisionGuidedSeq2Seq, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The official T5Stack's fusion (eval), written out: no masks, softmax over the text axis (type 0)."""
    fusion = model.fusion
    with torch.no_grad():
        text = model.text_model.get_encoder()(  # type: ignore[operator]
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state  # (B, S, d): after the final RMS norm (and dropout)
        video = batch["video"]  # (B, T, D): the image transformer is never called in VG-T5
        if fusion.kind == 0:
            keys = F.linear(video, fusion.video_key.weight, fusion.video_key.bias)  # (B, T, d)
            weights = F.softmax(torch.bmm(text, keys.transpose(1, 2)), dim=1)  # (B, S, T)
            attended = torch.bmm(weights, video)  # (B, S, D)
            gate = torch.sigmoid(
                F.linear(torch.cat((attended, text), 2), fusion.gate.weight, fusion.gate.bias)
            )
            out = F.linear(torch.cat((text, gate * attended), 2), fusion.output.weight, fusion.output.bias)
        else:
            attention = fusion.attention
            query = F.linear(text, fusion.text_query.weight, fusion.text_query.bias).transpose(0, 1)
            key = F.linear(video, fusion.video_key.weight, fusion.video_key.bias).transpose(0, 1)
            value = F.linear(video, fusion.video_value.weight, fusion.video_value.bias).transpose(0, 1)
            # sequence first, as the official nn.MultiheadAttention call
            out = F.multi_head_attention_forward(
                query, key, value, model.d_model, fusion.heads, attention.in_proj_weight,
                attention.in_proj_bias, None, None, False, 0.0, attention.out_proj.weight,
                attention.out_proj.bias, training=False,
            )[0].transpose(0, 1)  # fmt: skip  # (B, S, d)
            gate = torch.sigmoid(F.linear(torch.cat((out, text), 2), fusion.gate.weight, fusion.gate.bias))
            out = gate * out
        assert fusion.norm is not None
        return F.layer_norm(text + out, (model.d_model,), fusion.norm.weight, fusion.norm.bias)


@pytest.mark.parametrize("kind", [0, 5])
def test_vg_t5_fuses_after_the_final_norm_as_the_official_forward(kind: int) -> None:
    model = tiny_vg("t5", video_dim=VIDEO, cross_attn_type=kind, use_img_trans=True, fusion_heads=4)
    _randomise_fusion_output(model)
    batch = inputs(model, video_dim=VIDEO)
    torch.testing.assert_close(_encoded(model, batch), _official_t5_fusion(model, batch), rtol=0, atol=1e-5)


def _t5_fixture(model: VisionGuidedSeq2Seq, options: dict[str, Any]) -> dict[str, Any]:
    """A fixture in the official layout (v2), its outputs computed by readcli: tests the harness on T5."""
    batch = inputs(model, video_dim=VIDEO)
    lengths = batch["video_mask"].sum(1).tolist()
    fx: dict[str, Any] = {
        "format": "vg-gplms-official-fixture-2", "family": "t5", "official_options": options,
        "text_config": json.loads(model.text_model.config.to_json_string()),
        "state_dict": official_state_dict(model),
        "inputs": {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                   "image_features": batch["video"], "image_len": lengths,
                   "decoder_input_ids": torch.tensor([[0, 5, 7, 9], [0, 11, 13, 0]])},
    }  # fmt: skip
    start = {"decoder_start_token_id": 0, "pad_token_id": 0}
    fx["generation"] = {
        "greedy": {"num_beams": 1, "max_length": 6, "no_repeat_ngram_size": 0, **start},
        "greedy_no_repeat_3": {"num_beams": 1, "max_length": 6, "no_repeat_ngram_size": 3, **start},
        "beam": {
            "num_beams": 5,
            "max_length": 12,
            "no_repeat_ngram_size": 3,
            "early_stopping": True,
            **start,
        },
    }
    from test_vg_parity import encoder_and_logits, generate, generation_of

    state, logits = encoder_and_logits(model, fx)
    greedy = generate(model, fx, generation_of(fx, "greedy")).sequences
    beam = generate(model, fx, generation_of(fx, "beam"))
    pad = torch.zeros(2, 12 - beam.sequences.shape[1], dtype=torch.long)
    fx["outputs"] = {
        "encoder_last_hidden_state": state, "logits": logits,
        "greedy_generate": greedy, "greedy_loop": greedy,
        "greedy_generate_no_repeat_3": generate(model, fx, generation_of(fx, "greedy_no_repeat_3")).sequences,
        "beam_sequences": torch.cat([beam.sequences, pad], 1), "beam_sequences_scores": beam.sequences_scores,
    }  # fmt: skip
    return fx


def test_a_t5_fixture_in_the_official_layout_goes_through_the_parity_checks(tmp_path: Path) -> None:
    """The parity test takes official_t5_<X>.pt unchanged: file name, layout, T5 config and key names."""
    options = {"fusion_layer": 5, "use_img_trans": True, "use_forget_gate": True, "cross_attn_type": 5,
               "dim_common": 32, "n_attn_heads": 4}  # fmt: skip
    model = tiny_vg("t5", video_dim=VIDEO, cross_attn_type=5, use_img_trans=True, fusion_heads=4)
    _randomise_fusion_output(model)
    torch.save(_t5_fixture(model, options), tmp_path / "official_t5_A.pt")
    (found,) = fixture_files(tmp_path)
    fx = load_fixture(found)
    assert fx["family"] == "t5" and "encoder._multi_head_attn.in_proj_weight" in fx["full_state_dict"]
    assert "encoder.img_transformer.pos_encoder.pe" in fx["full_state_dict"]
    loaded = model_of(fx, "t5", fx["full_state_dict"])
    assert loaded.config.use_img_trans and loaded.fusion_heads == 4
    check_outputs(loaded, fx, 1e-5)
    check_tokens(loaded, fx)


def _official_bart(tmp_path: Path, kind: int = 5) -> tuple[VisionGuidedSeq2Seq, dict[str, torch.Tensor]]:
    model = tiny_vg("bart", video_dim=VIDEO, cross_attn_type=kind, fusion_heads=4, fusion_layer=0)
    _randomise_fusion_output(model)
    return model, official_state_dict(model)


def test_checkpoint_layouts_load_to_the_same_function(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model, state = _official_bart(tmp_path)
    assert "model.encoder._linear_2.weight" in state and "model.encoder.final_layer_norm.weight" in state
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1}, tmp_path / "a.ckpt")
    torch.save(state, tmp_path / "plain.pt")
    save_file(
        {k: v.contiguous() for k, v in state.items() if k != "lm_head.weight"},
        str(tmp_path / "s.safetensors"),
    )
    batch = inputs(model, video_dim=VIDEO)
    expected = _encoded(model, batch)
    base = VisionGuidedConfig("bart", fusion_heads=4, fusion_layer=0)
    for name in ("a.ckpt", "plain.pt", "s.safetensors"):
        loaded = vision_guided_from_official(read_checkpoint(tmp_path / name), model.text_model.config, base)
        assert loaded.config.cross_attn_type == 5 and loaded.config.fusion_trained
        assert loaded.config.video_dim == VIDEO and not loaded.config.use_img_trans
        torch.testing.assert_close(_encoded(loaded, batch), expected, rtol=0, atol=0)
    assert loaded.adapter_targets().new_heads == ()  # a trained fusion: frozen with the backbone


def test_what_the_file_cannot_tell_is_checked_against_the_shapes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, state = _official_bart(tmp_path)
    config = model.text_model.config
    default = vision_guided_from_official(state, config, VisionGuidedConfig("bart", fusion_layer=0))
    assert default.fusion_heads == 1  # the official -n_attn_heads default, with a warning saying so
    assert "cannot tell its fusion head count" in caplog.text and "--fusion-heads" in caplog.text
    with pytest.raises(CheckpointError, match="--fusion-heads 3 does not divide the fusion's width 32"):
        vision_guided_from_official(state, config, VisionGuidedConfig("bart", fusion_heads=3))
    with pytest.raises(
        CheckpointError, match="--fusion-layer 4 is out of range: the checkpoint's encoder has 2"
    ):
        vision_guided_from_official(state, config, VisionGuidedConfig("bart", fusion_layer=4))
    other = dict(state, **{"model.encoder._linear_4.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="cross_attn_type 3 or 4; readcli implements 0 and 5"):
        vision_guided_from_official(other, config, VisionGuidedConfig("bart"))
    with pytest.raises(CheckpointError, match="not an official VG-T5 checkpoint"):
        vision_guided_from_official(state, config, VisionGuidedConfig("t5"))
    text_only = {k: v for k, v in state.items() if "_linear" not in k}
    with pytest.raises(CheckpointError, match="no fusion in this checkpoint"):
        vision_guided_from_official(text_only, config, VisionGuidedConfig("bart"))


def test_a_file_that_needs_unpickling_is_refused_unless_trusted(tmp_path: Path) -> None:
    model, state = _official_bart(tmp_path)
    path = tmp_path / "hparams.ckpt"  # as a Lightning wrapper that saved its argparse namespace would
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": argparse.Namespace(fusion_layer=0)}, path)  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"needs arbitrary unpickling \(argparse.Namespace\).*--trust-checkpoint"
    ):
        read_checkpoint(path)
    assert set(read_checkpoint(path, trust=True)) == {f"model.{k}" for k in state}
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "junk.ckpt")


def test_load_official_checkpoint_over_a_directory_and_the_cli(tmp_path: Path) -> None:
    model, state = _official_bart(tmp_path, kind=0)
    model.text_model.save_pretrained(tmp_path / "hf")  # type: ignore[operator]
    model.tokenizer.save_pretrained(tmp_path / "hf")
    path = tmp_path / "official.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, path)
    loaded = load_official_checkpoint(path, backbone=tmp_path / "hf", fusion_layer=0)
    batch = inputs(model, video_dim=VIDEO)
    torch.testing.assert_close(_encoded(loaded, batch), _encoded(model, batch), rtol=0, atol=0)
    assert loaded.tokenizer is not None and loaded.fusion_index == 0
    transcript, features = tmp_path / "t.txt", tmp_path / "f.npy"
    transcript.write_text("cut the onion", encoding="utf-8")
    import numpy as np

    np.save(features, np.random.default_rng(0).normal(size=(3, VIDEO)).astype(np.float32))
    common = ["summarize", "--transcript", str(transcript), "--video-features", str(features),
              "--device", "cpu", "--backbone", str(tmp_path / "hf"), "--official-checkpoint", str(path),
              "--max-length", "6"]  # fmt: skip
    result = CliRunner().invoke(app, [*common, "--fusion-layer", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # random weights in the official layout: the one warning is that they are not published weights
    prefix = "these results come from weights that are not the published ones"
    assert [w.startswith(prefix) for w in report["warnings"]] == [True]
    assert report["published_weights"] is False and report["generation"]["beams"] == 5
    expected = model.generate(*(torch.as_tensor(x) for x in _single(model, transcript, features)),
                              GenerationSettings(max_length=6))  # fmt: skip
    assert report["summary"] == model.decode(expected)[0]
    torch.save({"state_dict": state, "hyper_parameters": argparse.Namespace()}, tmp_path / "pickled.ckpt")
    refused = CliRunner().invoke(app, [*common[:-4], "--official-checkpoint", str(tmp_path / "pickled.ckpt")])
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "needs arbitrary unpickling" in refused.stderr and "--trust-checkpoint" in refused.stderr


def _single(model: VisionGuidedSeq2Seq, transcript: Path, features: Path) -> tuple[Any, ...]:
    import numpy as np

    encoded = model.tokenizer([transcript.read_text()], return_tensors="pt")
    rows = torch.from_numpy(np.load(features))[None]  # (1, T, D)
    return encoded["input_ids"], encoded["attention_mask"], rows, torch.ones(rows.shape[:2], dtype=torch.long)
