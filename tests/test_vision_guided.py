"""Vision-guided BART and T5: fusion, AdapterHost contract, PVLA states, generation, save/load, presets.

Tiny models (d_model 32, 2 layers) over the byte-level ByT5 tokenizer, which needs no files.
Dimension letters: B batch, S input tokens, T video rows, L encoder layers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from readcli.adapters import count_parameters, method_settings
from readcli.adapters.inject import adapter_parameters, inject
from readcli.alignment import PVLASettings, pvla_loss
from readcli.backbones.registry import load_backbone
from readcli.backbones.vision_guided.checkpoint_io import (
    build_vision_guided,
    load_vg_card,
    load_vision_guided,
    save_vision_guided,
)
from readcli.backbones.vision_guided.config import (
    GenerationSettings,
    VisionGuidedConfig,
    base_text_config,
    tiny_text_config,
)
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq
from readcli.errors import CheckpointError, InvalidValueError, OfflineError

FAMILIES = ("bart", "t5")
VIDEO_DIM = 12


def tokenizer() -> Any:
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def tiny_vg(family: str, seed: int = 0, *, video_dim: int = VIDEO_DIM, **config: Any) -> VisionGuidedSeq2Seq:
    tok = tokenizer()
    torch.manual_seed(seed)
    text = tiny_text_config(
        family, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    settings = VisionGuidedConfig(family, video_dim=video_dim, fusion_dropout=0.0, **config)
    return build_vision_guided(text, settings, tok)


def inputs(model: VisionGuidedSeq2Seq, seed: int = 1, video_dim: int = VIDEO_DIM) -> dict[str, torch.Tensor]:
    """Two transcripts (row 1 padded), 5 and 3 video rows, and two target summaries."""
    tok = model.tokenizer
    encoded = tok(["cut the onion into thin slices", "boil water"], padding=True, return_tensors="pt")
    labels = tok(text_target=["slice onions", "boil it"], padding=True, return_tensors="pt")["input_ids"]
    generator = torch.Generator().manual_seed(seed)
    video_mask = torch.ones(2, 5, dtype=torch.long)
    video_mask[1, 3:] = 0
    return {
        "input_ids": encoded["input_ids"],  # (B, S)
        "attention_mask": encoded["attention_mask"],  # (B, S)
        "video": torch.randn(2, 5, video_dim, generator=generator),  # (B, T, D_V)
        "video_mask": video_mask,  # (B, T)
        "labels": labels.masked_fill(labels == tok.pad_token_id, -100),
    }


def _output_linear(model: VisionGuidedSeq2Seq) -> nn.Linear:
    """The fusion's last linear (type 0: `output`; type 5: the attention's output projection)."""
    fusion = model.fusion
    return fusion.output if fusion.kind == 0 else fusion.attention.out_proj


def _randomise_fusion_output(model: VisionGuidedSeq2Seq) -> None:
    """A trained-like head: every fusion linear away from its small (or zero) start."""
    with torch.no_grad():
        for module in model.fusion.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features**-0.5)
        nn.init.normal_(_output_linear(model).weight, std=1.0)


def _logits(model: VisionGuidedSeq2Seq, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch)["logits"]  # (B, R, vocab)


def _encoded(model: VisionGuidedSeq2Seq, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    args = (batch["input_ids"], batch["attention_mask"], batch["video"], batch["video_mask"])
    with torch.no_grad():
        return model.encode(*args)[0].last_hidden_state  # (B, S, d)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", [0, 5])
def test_readcli_identity_start_and_padding_mask_options(family: str, kind: int) -> None:
    """zero_init_output + no post-norm: a new head is the stock model; mask_padding: padding never read."""
    model = tiny_vg(family, cross_attn_type=kind, zero_init_output=True, post_norm=False, mask_padding=True)
    batch = inputs(model)
    with torch.no_grad():
        stock = model.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
    torch.testing.assert_close(_logits(model, batch), stock.logits, rtol=0, atol=1e-6)
    _randomise_fusion_output(model)
    moved = _logits(model, batch)
    assert (moved - stock.logits).abs().max() > 1e-3  # (std 1 output projection)
    other = dict(batch, video=batch["video"].clone())
    other["video"][1, 3:] = 1e3  # padded video rows: never read
    torch.testing.assert_close(_logits(model, other)[1], moved[1], rtol=0, atol=1e-5)
    other["video"][1, 0] += 1.0  # a valid row: changes row 1 only
    changed = _logits(model, other)
    assert (changed[1] - moved[1]).abs().max() > 1e-4
    torch.testing.assert_close(changed[0], moved[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", [0, 5])
def test_official_fusion_reads_padding_and_a_zero_output_still_normalises(family: str, kind: int) -> None:
    """Official behaviour: no padding mask (padded video rows change the outputs); post-fusion LayerNorm."""
    model = tiny_vg(family, cross_attn_type=kind)
    assert model.fusion.norm is not None and not model.fusion.mask_padding
    batch = inputs(model)
    base = _encoded(model, batch)
    other = dict(batch, video=batch["video"].clone())
    other["video"][1, 3:] = 5.0  # padded rows of sample 1 are attended, as official
    assert (_encoded(model, other)[1] - base[1]).abs().max() > 1e-3
    if kind == 0:  # the softmax over the text axis runs over padded tokens too: they change real ones
        ids = batch["input_ids"].clone()
        pad = batch["attention_mask"][1] == 0
        ids[1, pad] = ids[1, 0]
        changed = _encoded(model, dict(batch, input_ids=ids))
        assert (changed[1, ~pad] - base[1, ~pad]).abs().max() > 1e-4
    zero = tiny_vg(family, cross_attn_type=kind, zero_init_output=True)  # O = 0, H' = LayerNorm(H)
    with torch.no_grad():
        encoded, _ = zero.encode(
            batch["input_ids"], batch["attention_mask"], batch["video"], batch["video_mask"]
        )
        text = zero.text_model.get_encoder()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        expected = torch.nn.functional.layer_norm(text.last_hidden_state, (zero.d_model,))
    torch.testing.assert_close(encoded.last_hidden_state, expected, rtol=0, atol=1e-5)


def test_image_transformer_runs_in_bart_and_is_built_but_never_called_in_t5() -> None:
    """VG-BART runs the image transformer over the video; official VG-T5 builds it and never calls it."""
    for family in FAMILIES:
        model = tiny_vg(family, video_dim=16, use_img_trans=True)
        _randomise_fusion_output(model)
        plain = tiny_vg(family, video_dim=16)
        state = {k: v for k, v in model.state_dict().items() if "image_transformer" not in k}
        plain.load_state_dict(state)
        assert model.fusion.image_transformer is not None and plain.fusion.image_transformer is None
        batch = inputs(model, video_dim=16)
        with_it, without = _encoded(model, batch), _encoded(plain, batch)
        if family == "t5":
            torch.testing.assert_close(with_it, without, rtol=0, atol=0)
        else:
            assert (with_it - without).abs().max() > 1e-4
    with pytest.raises(InvalidValueError, match="video_dim divisible by the image transformer's 8 heads"):
        VisionGuidedConfig("bart", video_dim=12, use_img_trans=True)


def test_intermediate_fusion_layer_feeds_the_later_layers_and_t5_fuses_after_its_final_norm() -> None:
    model = tiny_vg("bart", fusion_layer=0)
    assert model.fusion_index == 0
    batch = inputs(model)
    model.collect_block_states = True
    states = model(**batch)["block_states"]
    last = tiny_vg("bart")  # same seed, fusion after the last layer
    last.load_state_dict(model.state_dict())
    last.collect_block_states = True
    reference = last(**batch)["block_states"]
    torch.testing.assert_close(states.text[0], reference.text[0])  # layer 0 recorded before its fusion
    assert (states.text[1] - reference.text[1]).abs().max() > 1e-4  # layer 1 saw fused states
    with pytest.raises(InvalidValueError, match="fusion_layer 2 is out of range for a 2-layer encoder"):
        tiny_vg("bart", fusion_layer=2)
    with pytest.raises(
        InvalidValueError, match="fusion_layer 0 is invalid for T5: .* after the encoder's final"
    ):
        tiny_vg("t5", fusion_layer=0)
    assert tiny_vg("t5", fusion_layer=1).fuses_encoder_output  # the last layer = after the final norm


@pytest.mark.parametrize("family", FAMILIES)
def test_block_states_feed_pvla_and_gradients_reach_read_and_the_fusion(family: str) -> None:
    model = tiny_vg(family)
    report = inject(model, method_settings("read", bottleneck=4))
    assert len(report.modules) == 4  # 2 encoder + 2 decoder feed-forward outputs
    assert sum(".encoder." in m for m in report.modules) == 2
    assert any(name.startswith("fusion.") for name in report.trainable)  # the new head trains
    batch = inputs(model)
    model.collect_block_states = True
    model.train()
    out = model(**batch)
    states = out["block_states"]
    assert states.video.shape == (2, 2, 5, 32) and states.text.shape == (
        2,
        2,
        batch["input_ids"].shape[1],
        32,
    )
    assert states.video_mask.tolist()[1] == [True] * 3 + [False] * 2
    assert torch.equal(states.text_mask, batch["attention_mask"].bool())
    loss = out["loss"] + pvla_loss(states, settings=PVLASettings(weight=1.0))
    loss.backward()
    assert (
        model.fusion.video_key.weight.grad is not None and model.fusion.video_key.weight.grad.abs().sum() > 0
    )
    adapters = adapter_parameters(model)
    downs = [p for n, p in adapters.items() if n.endswith("down.weight")]
    assert downs and all(p.grad is not None for p in downs)
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_targets_and_method_accounting(family: str) -> None:
    model = tiny_vg(family)
    targets = model.adapter_targets()
    assert {t.stream for t in targets.feed_forward} == {"encoder", "decoder"}
    assert targets.new_heads == ("fusion",) and targets.prompt is None
    assert targets.extra["video_dim"] == str(VIDEO_DIM) and targets.extra["family"] == family
    fusion = sum(p.numel() for p in model.fusion.parameters())
    proj = inject(tiny_vg(family), "proj")  # the last untied linear, not the tied embedding matrix
    last = proj.modules[0]
    assert last.startswith("text_model.") and "decoder" in last and last.endswith(("fc2", "wo"))
    linear = model.get_submodule(last)
    assert proj.count.trainable == fusion + sum(p.numel() for p in linear.parameters())
    with pytest.raises(InvalidValueError, match="does not accept prompt tokens"):
        inject(tiny_vg(family), "prompt")
    trained = tiny_vg(family, fusion_trained=True)
    assert trained.adapter_targets().new_heads == ()
    assert inject(trained, method_settings("read", bottleneck=4)).count.trainable < fusion


@pytest.mark.parametrize("family", FAMILIES)
def test_read_generates_without_a_cache_and_each_token_is_the_teacher_forced_argmax(family: str) -> None:
    model = tiny_vg(family)
    _randomise_fusion_output(model)
    inject(model, method_settings("read", bottleneck=4))
    for parameter in adapter_parameters(model).values():
        nn.init.normal_(parameter, std=0.3)
    assert not model.uses_kv_cache()
    batch = inputs(model)
    text_model: Any = model.text_model
    text_model.generation_config.eos_token_id = None  # run every step: each token an argmax
    greedy = GenerationSettings(beams=1, no_repeat_ngram_size=0, max_length=7)  # the start token counts
    ids = model.generate(
        batch["input_ids"], batch["attention_mask"], batch["video"], batch["video_mask"], greedy
    )
    assert ids.shape == (2, 7)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, decoder_input_ids=ids[:, :-1])[
            "logits"
        ]
    assert torch.equal(logits.argmax(-1), ids[:, 1:])
    assert len(model.decode(ids)) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_beam_search_settings_are_applied(family: str) -> None:
    model = tiny_vg(family)
    assert model.uses_kv_cache()  # no READ: the cache is allowed
    batch = inputs(model)
    args = (batch["input_ids"], batch["attention_mask"], batch["video"], batch["video_mask"])
    ids = model.generate(*args, GenerationSettings(beams=3, no_repeat_ngram_size=2, max_length=5))
    assert ids.shape[1] <= 5  # max_length counts the decoder start token, as official
    for row in ids.tolist():  # no bigram twice (no_repeat_ngram_size=2)
        bigrams = list(zip(row[1:], row[2:], strict=False))
        assert len(bigrams) == len(set(bigrams))
    with pytest.raises(InvalidValueError, match="--beams 0 is invalid"):
        GenerationSettings(beams=0)
    with pytest.raises(InvalidValueError, match="--no-repeat-ngram-size -1"):
        GenerationSettings(no_repeat_ngram_size=-1)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_round_trip_without_pickles(family: str, tmp_path: Path) -> None:
    model = tiny_vg(family)
    _randomise_fusion_output(model)
    save_vision_guided(model, tmp_path / "vg")
    files = {p.relative_to(tmp_path / "vg").as_posix() for p in (tmp_path / "vg").rglob("*") if p.is_file()}
    assert {
        "config.json",
        "fusion.safetensors",
        "text_model/config.json",
        "text_model/model.safetensors",
    } <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".ckpt"))]
    loaded = load_backbone(tmp_path / "vg")  # through the registry
    assert isinstance(loaded, VisionGuidedSeq2Seq) and loaded.architecture_name() == f"vision_guided_{family}"
    batch = inputs(model)
    torch.testing.assert_close(loaded(**batch)["logits"], model(**batch)["logits"], rtol=0, atol=0)
    wider = load_vision_guided(tmp_path / "vg", video_dim=7)  # a new head for other features
    assert wider.fusion.video_key.in_features == 7
    inject(model, "read")
    with pytest.raises(InvalidValueError, match="has a method injected"):
        save_vision_guided(model, tmp_path / "other")


def test_trained_fusion_keeps_its_width_and_bad_directories_are_named(tmp_path: Path) -> None:
    save_vision_guided(tiny_vg("bart", fusion_trained=True), tmp_path / "trained")
    with pytest.raises(
        InvalidValueError, match="trained fusion head for 12-d video features; it cannot take 7-d"
    ):
        load_vision_guided(tmp_path / "trained", video_dim=7)
    config = json.loads((tmp_path / "trained" / "config.json").read_text())
    config["config"]["family"] = "t5"
    (tmp_path / "trained" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="architecture vision_guided_bart but family 't5'"):
        load_vision_guided(tmp_path / "trained")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="'gpt2' model; vision-guided backbones wrap bart, t5"):
        load_vision_guided(tmp_path / "gpt", video_dim=7)
    with pytest.raises(CheckpointError, match="neither a vision-guided preset"):
        load_vision_guided(tmp_path / "missing")


def test_hugging_face_directory_and_preset_env_var_load_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_vg("t5")
    text_model: Any = model.text_model
    text_model.save_pretrained(tmp_path / "hf")
    model.tokenizer.save_pretrained(tmp_path / "hf")
    plain = load_vision_guided(tmp_path / "hf", video_dim=VIDEO_DIM)  # a new head on a stock directory
    assert plain.config.fusion_trained is False and plain.adapter_targets().new_heads == ("fusion",)
    monkeypatch.setenv("READCLI_T5_BASE", str(tmp_path / "hf"))
    preset = load_vision_guided("t5-base-vg")
    assert preset.config.video_dim == 2048 and preset.config == load_vg_card("t5-base-vg").config
    monkeypatch.setenv("READCLI_BART_BASE", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="holds a t5 model, but this backbone needs bart"):
        load_vision_guided("bart-base-vg")
    monkeypatch.setenv("READCLI_BART_BASE", str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="READCLI_BART_BASE=.*nowhere: not a directory"):
        load_vision_guided("bart-base-vg")


@pytest.mark.parametrize("preset", ["bart-base-vg", "t5-base-vg"])
def test_hub_id_offline_fails_at_once_naming_the_local_directory(
    preset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = load_vg_card(preset)
    monkeypatch.delenv(card.env_var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        load_vision_guided(preset)
    assert time.perf_counter() - began < 30
    message = str(info.value)
    assert card.hub_id in message and "--backbone DIR" in message and card.env_var in message
    assert "HF_HUB_OFFLINE is set" in message


def test_config_validation_names_the_bad_value() -> None:
    with pytest.raises(InvalidValueError, match="family 'gpt' is unknown: choose one of bart, t5"):
        VisionGuidedConfig("gpt")
    with pytest.raises(InvalidValueError, match="video_dim 0 is invalid"):
        VisionGuidedConfig("bart", video_dim=0)
    with pytest.raises(InvalidValueError, match="unknown vision-guided config keys colour"):
        VisionGuidedConfig.from_dict({"family": "bart", "colour": 1})
    model = tiny_vg("bart")
    batch = inputs(model)
    with pytest.raises(
        InvalidValueError, match="video features of width 3, but the video projection expects 12"
    ):
        model(**dict(batch, video=batch["video"][..., :3]))
    with pytest.raises(InvalidValueError, match="at least one video feature row"):
        model(**dict(batch, video_mask=torch.zeros_like(batch["video_mask"])))
    with pytest.raises(InvalidValueError, match="cross_attn_type 3 is not implemented: choose one of 0, 5"):
        VisionGuidedConfig("bart", cross_attn_type=3)
    with pytest.raises(InvalidValueError, match="use_forget_gate 'yes' is invalid: use true or false"):
        VisionGuidedConfig.from_dict({"family": "t5", "use_forget_gate": "yes"})
    with pytest.raises(InvalidValueError, match="fusion_dropout 1.5 is invalid"):
        VisionGuidedConfig("bart", fusion_dropout=1.5)
    with pytest.raises(InvalidValueError, match="fusion heads 5 do not divide the model width 32"):
        tiny_vg("bart", cross_attn_type=5, fusion_heads=5)
    with pytest.raises(InvalidValueError, match="unknown generation settings beam:"):
        GenerationSettings.from_dict({"beam": 5})
    with pytest.raises(InvalidValueError, match="summary length 1 is invalid: it counts the decoder start"):
        GenerationSettings(max_length=1)


def test_presets_are_the_shipped_official_setting() -> None:
    """bart-base-vg / t5-base-vg: cross_attn_type 0, forget gate, post-norm, no padding mask, 5 beams."""
    for name, image_transformer in (("bart-base-vg", True), ("t5-base-vg", False)):
        card = load_vg_card(name)
        config = card.config
        assert (config.cross_attn_type, config.use_forget_gate, config.post_norm) == (0, True, True)
        assert (config.fusion_layer, config.mask_padding, config.zero_init_output) == (-1, False, False)
        assert config.use_img_trans is image_transformer  # VG-T5 never calls it: the same function
        assert card.generation == GenerationSettings(beams=5, no_repeat_ngram_size=3, max_length=64)
        assert card.generation.bart_forced_eos
    assert GenerationSettings() == load_vg_card("bart-base-vg").generation


@pytest.mark.parametrize(
    ("family", "text_total", "read_k", "read_count"),
    [("bart", 139_420_416, 59, 1_172_448), ("t5", 222_903_552, 49, 1_923_936)],
)
def test_trainable_parameter_report_at_base_size(
    family: str, text_total: int, read_k: int, read_count: int
) -> None:
    """bart-base / t5-base sized VG models on the meta device: READ + the new fusion head train."""
    d, video = 768, 2048
    # type 0: video key, forget gate over the attended video, output linear over [text; video], post-norm
    fusion = (video * d + d) + ((video + d) * video + video) + ((d + video) * d + d) + 2 * d
    assert fusion == 9_507_840
    with torch.device("meta"):
        model = build_vision_guided(base_text_config(family), VisionGuidedConfig(family))
        shipped = build_vision_guided(base_text_config(family), load_vg_card(f"{family}-base-vg").config)
    assert count_parameters(model).total == text_total + fusion
    image_transformer = 4 * (
        (3 * video * video + 3 * video) + (video * video + video) + 2 * (video * video + video) + 4 * video
    )
    assert image_transformer == 100_745_216
    extra = image_transformer if family == "bart" else 0  # the presets: VG-T5 leaves out the uncalled one
    assert count_parameters(shipped).total == text_total + fusion + extra
    report = inject(model, method_settings("read", bottleneck=read_k))
    assert report.count.trainable == read_count + fusion
    assert report.count.total == text_total + fusion + read_count
    with torch.device("meta"):  # a VG checkpoint of the shipped setting, image transformer built (T5 too)
        trained = build_vision_guided(
            base_text_config(family), VisionGuidedConfig(family, use_img_trans=True, fusion_trained=True)
        )
    count = inject(trained, method_settings("read", bottleneck=read_k)).count
    assert count.trainable == read_count  # the paper's READ count
    assert count.total == text_total + fusion + image_transformer + read_count
    # the paper's shares (Tables 4-5: 0.47 % on VG-BART, 0.57 % on VG-T5) are READ over this total
    assert round(100 * count.trainable / count.total, 2) == (0.47 if family == "bart" else 0.57)


def test_a_new_head_starts_as_the_official_one() -> None:
    """VG-BART: BART's init_weights draws every fusion linear from N(0, init_std), zero bias (official
    model-wide init); VG-T5: torch's default (T5's _init_weights skips plain linears)."""
    bart = tiny_vg("bart", video_dim=16, use_img_trans=True)
    linears = [m for m in bart.fusion.modules() if isinstance(m, nn.Linear)]
    # key, gate, output; per image-transformer layer out_proj, linear1, linear2
    assert len(linears) == 3 + 4 * 3
    std = float(bart.text_model.config.init_std)
    assert all(float(m.bias.abs().max()) == 0 for m in linears)
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert abs(float(weights.std()) - std) < 0.1 * std
    t5 = tiny_vg("t5")
    assert float(t5.fusion.video_key.bias.abs().max()) > 0  # torch's uniform init
    zero = tiny_vg("bart", cross_attn_type=5, zero_init_output=True)
    assert float(zero.fusion.attention.out_proj.weight.abs().max()) == 0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", [0, 5])
def test_every_method_trains_with_pvla_on_both_official_variants(family: str, kind: int) -> None:
    """READ and every baseline (prompt is refused for seq2seq) inject, and token loss + PVLA reach them."""
    for method in ("full", "partial", "bias", "proj", "lora", "adapter", "read", "ia3"):
        model = tiny_vg(family, video_dim=16, cross_attn_type=kind, use_img_trans=True, fusion_heads=4)
        settings = method_settings(method, bottleneck=4 if method in ("read", "adapter") else None)
        report = inject(model, settings)
        model.train()
        model.collect_block_states = True
        out = model(**inputs(model, video_dim=16))
        loss = out["loss"] + pvla_loss(out["block_states"], settings=PVLASettings(weight=1.0))
        loss.backward()
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and set(report.trainable) <= set(trainable), method
        reached = [n for n, p in trainable.items() if p.grad is not None and float(p.grad.abs().sum()) > 0]
        if not (method == "bias" and family == "t5"):  # T5 has no bias terms: BitFit trains the head only
            assert any(not n.startswith("fusion.") for n in reached), (method, reached[:5])
        # the new fusion head trains under every method (the image transformer only where it is called)
        assert any(n.startswith("fusion.video_key") for n in reached), method
        assert any(n.startswith("fusion.image_transformer") for n in reached) is (family == "bart"), method
