"""UMT: the official layout from a config, masks and padding, adapters, PVLA states, loading, training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from readcli.adapters.inject import inject
from readcli.backbones.registry import (
    build_backbone,
    load_backbone,
    load_card,
    resolve_weights,
    save_backbone,
)
from readcli.backbones.umt.config import UMTConfig, tiny_umt_config
from readcli.backbones.umt.model import UMT, umt_state_layout
from readcli.errors import CheckpointError, InvalidValueError
from readcli.training.highlight_task import saliency_bce


def inputs(batch: int = 3, clips: int = 7, tokens: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    vid_mask = torch.ones(batch, clips)
    vid_mask[1:2, clips - 2 :] = 0  # row 1 (if any) is padded
    txt_mask = torch.ones(batch, tokens)
    txt_mask[2:3, 2:] = 0  # row 2 (if any) has two text tokens
    return {
        "src_txt": torch.randn(batch, tokens, 12, generator=g),
        "src_txt_mask": txt_mask,
        "src_vid": torch.randn(batch, clips, 18, generator=g),
        "src_vid_mask": vid_mask,
    }


def test_tiny_umt_outputs_and_official_names() -> None:
    model = build_backbone(tiny_umt_config()).eval()
    assert isinstance(model, UMT) and model.architecture_name() == "umt"
    out = model(**inputs())
    assert out["saliency_scores"].shape == (3, 7)
    assert out["pred_logits"].shape == out["pred_spans"].shape == (3, 7, 2)
    assert out["proposal_mask"].tolist()[1] == [True] * 5 + [False] * 2
    assert (out["pred_logits"][1, 5:, 0] < -1e3).all()  # padding proposals are background
    keys = set(model.state_dict())
    for key in (
        "video_enc.mapping.linear.weight", "video_enc.pos_enc.pe", "video_enc.encoder.att.q.weight",
        "video_enc.encoder.ffn.mapping.3.weight", "query_gen.mapping.norm.weight", "query_gen.encoder.m.bias",
        "query_dec.q_pos_enc.pe", "query_dec.decoder.1.att2.k.weight", "query_dec.norm.bias",
        "pred_head.0.saliency_pred.linear.weight", "pred_head.1.window_pred.linear.bias",
    ):  # fmt: skip
        assert key in keys, key
    assert "query_gen.mapping.linear.bias" not in keys  # nncore drops it before a norm
    assert not any(k.startswith(("audio_enc.", "cross_enc.")) for k in keys)  # video only


def test_variants_audio_query_free_and_umt_s_size() -> None:
    layout = umt_state_layout(tiny_umt_config(a_feat_dim=6, cross_layers=2))
    assert layout["cross_enc.encoder.token"][0] == (4, 32)
    assert "cross_enc.encoder.encoder.1.ffn2.mapping.3.weight" in layout
    free = umt_state_layout(tiny_umt_config(t_feat_dim=0, boundary_head=False))
    assert not any(k.startswith(("query_gen.", "pred_head.1.")) for k in free)
    umt_s = umt_state_layout(UMTConfig())
    assert len(umt_s) == 143 and sum(torch.Size(s).numel() for s, _ in umt_s.values()) == 12_586_756
    model = build_backbone(tiny_umt_config(a_feat_dim=6)).eval()
    with pytest.raises(InvalidValueError, match="no src_aud was given"):
        model(**inputs())
    out = model(**inputs(), src_aud=torch.randn(3, 7, 6))
    assert out["saliency_scores"].shape == (3, 7)


def layout_size(config: UMTConfig) -> tuple[int, int]:
    layout = umt_state_layout(config)
    return len(layout), sum(torch.Size(shape).numel() for shape, _ in layout.values())


def test_the_preset_is_the_official_highlight_layout_and_umt_is_its_alias() -> None:
    card = load_card("umt")
    assert card.name == "umt-s" and card.configuration == load_card("umt-s").configuration
    config = UMTConfig.from_dict(card.configuration)
    assert config.has_audio and config.has_query and not config.boundary_head  # plugins/hd.py: saliency only
    assert layout_size(config) == (137, 12_585_985)  # the official TVSum files
    assert card.raw["configuration_variants"] == [{"t_feat_dim": 0}]
    assert layout_size(UMTConfig.from_dict({**card.configuration, "t_feat_dim": 0})) == (126, 12_191_233)
    files = card.source["files"]
    assert len(files["youtube"]) == 6 and len(files["tvsum"]) == 10
    assert files["youtube"]["dog"] == "umt_small_100e_youtube_dog-90f2189e.pth"
    assert files["tvsum"]["BK"] == "umt_small_500e_tvsum_bk-12c75dff.pth"


def test_official_files_load_through_the_preset_and_scratch_needs_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path))
    monkeypatch.delenv("READCLI_UMT_S", raising=False)
    with pytest.raises(CheckpointError) as err:
        resolve_weights(load_card("umt"))
    message = str(err.value)
    assert "https://dl.catcatdev.com/umt/" in message and "umt_small_100e_youtube_dog-90f2189e.pth" in message
    assert "umt-s-scratch" in message and "{" not in message  # a readable line, not a raw dict
    state = torch.random.get_rng_state()
    fresh = load_backbone("umt-s-scratch")
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    assert isinstance(fresh, UMT) and fresh.config == UMTConfig.from_dict(load_card("umt-s").configuration)
    again = load_backbone("umt-s-scratch")  # fixed seed: the same frozen backbone in every run and on resume
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), again.state_dict().values(), strict=True)
    )
    youtube = build_backbone(UMTConfig.from_dict({**load_card("umt").configuration, "t_feat_dim": 0}))
    for model in (fresh, youtube):  # TVSum's and YouTube's official layouts both load as the preset
        torch.save(model.state_dict(), tmp_path / "official.pth")
        monkeypatch.setenv("READCLI_UMT_S", str(tmp_path / "official.pth"))
        loaded = load_backbone("umt")
        assert loaded.config == model.config and torch.equal(
            loaded.video_enc.mapping.linear.weight, model.video_enc.mapping.linear.weight
        )
    torch.save(build_backbone(tiny_umt_config()).state_dict(), tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="is not the preset's UMT: hidden_dim=32 \\(card: 256\\)"):
        load_backbone("umt-s")


def test_linear_layers_are_xavier_normal_as_nncore_by_default() -> None:
    torch.manual_seed(0)
    weight = build_backbone(
        tiny_umt_config(v_feat_dim=2048)
    ).video_enc.mapping.linear.weight.detach()  # (32, 2048)
    std = (2.0 / (32 + 2048)) ** 0.5
    assert float(weight.std()) == pytest.approx(std, rel=0.02)
    # a uniform draw of that std never exceeds sqrt(3) std; a normal one does for ~8 % of the entries
    assert float((weight.abs() > 3**0.5 * std).float().mean()) == pytest.approx(0.083, abs=0.01)


def test_learned_tables_are_drawn_as_nncore_parameter_in_umt_s_scratch() -> None:
    """Five position tables and the bottleneck tokens: randn / sqrt(d), std 0.0625 at d 256 (not 0.02)."""
    state = load_backbone("umt-s-scratch").state_dict()
    tables = [
        "video_enc.pos_enc.pe", "audio_enc.pos_enc.pe", "cross_enc.pos_enc.pe",
        "query_dec.q_pos_enc.pe", "query_dec.k_pos_enc.pe",
    ]  # fmt: skip
    for key in tables:  # (1, 5000, 256): 1.28 M draws, the std's standard error is 4e-5
        table = state[key]
        assert table.shape == (1, 5000, 256), key
        assert float(table.std()) == pytest.approx(0.0625, abs=5e-4), key
        assert abs(float(table.mean())) < 5e-4, key
    token = state["cross_enc.encoder.token"]  # (4, 256): 1,024 draws, standard error 1.4e-3
    assert token.shape == (4, 256) and float(token.std()) == pytest.approx(0.0625, abs=0.008)
    # the scale follows the last dim, as nncore's: 1/sqrt(32) for the tiny UMT
    tiny = build_backbone(tiny_umt_config(max_len=2000)).video_enc.pos_enc.pe.detach()  # (1, 2000, 32)
    assert float(tiny.std()) == pytest.approx(32**-0.5, rel=0.02)


def test_padding_never_changes_the_valid_clips() -> None:
    model = build_backbone(tiny_umt_config()).eval()
    short = inputs(batch=1, clips=5)
    padded = {k: v.clone() for k, v in short.items()}
    padded["src_vid"] = torch.cat([short["src_vid"], torch.randn(1, 3, 18)], dim=1)
    padded["src_vid_mask"] = torch.cat([short["src_vid_mask"], torch.zeros(1, 3)], dim=1)
    a, b = model(**short), model(**padded)
    torch.testing.assert_close(a["saliency_scores"], b["saliency_scores"][:, :5])
    torch.testing.assert_close(a["pred_logits"], b["pred_logits"][:, :5])


def test_read_is_the_identity_at_injection_and_pvla_states() -> None:
    model = build_backbone(tiny_umt_config()).eval()
    before = model(**inputs())
    report = inject(model, "read")
    assert len(report.modules) == 3  # video encoder + 2 decoder layers
    after = model(**inputs())
    torch.testing.assert_close(before["saliency_scores"], after["saliency_scores"])
    model.collect_block_states = True
    states = model(**inputs())["block_states"]
    assert states.video.shape == (3, 3, 7, 32) and states.text.shape == (3, 3, 4, 32)
    assert states.text_mask.tolist()[2] == [True, True, False, False]
    free = build_backbone(tiny_umt_config(t_feat_dim=0))
    free.collect_block_states = True
    with pytest.raises(InvalidValueError, match="no query generator"):
        free(**inputs())


def test_saved_and_official_layouts_load_with_the_same_outputs(tmp_path: Path) -> None:
    model = build_backbone(tiny_umt_config(nheads=8)).eval()  # heads are not in the weights: UMT-S's 8
    expected = model(**inputs())["saliency_scores"]
    save_backbone(model, tmp_path / "saved")
    torch.testing.assert_close(load_backbone(tmp_path / "saved")(**inputs())["saliency_scores"], expected)
    official = {"module." + k: v for k, v in model.state_dict().items()}  # DataParallel-style names
    torch.save({"state_dict": official, "meta": {"epoch": 3}}, tmp_path / "umt.pth")
    loaded = load_backbone(tmp_path / "umt.pth")
    assert isinstance(loaded, UMT) and loaded.config.dec_layers == 2 and loaded.config.max_len == 64
    torch.testing.assert_close(loaded(**inputs())["saliency_scores"], expected)
    broken = dict(model.state_dict())
    broken["query_dec.norm.weight"] = torch.ones(7)
    torch.save({"state_dict": broken}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="query_dec.norm.weight"):
        load_backbone(tmp_path / "broken.pth")


def test_bad_config_names_the_key() -> None:
    with pytest.raises(InvalidValueError, match="unknown UMT config key.*decoder_layers"):
        UMTConfig.from_dict({"decoder_layers": 2})
    with pytest.raises(InvalidValueError, match="hidden_dim=30"):
        UMTConfig(hidden_dim=30, nheads=4)


def test_training_the_adapters_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = build_backbone(tiny_umt_config(dropout=0.0, input_dropout=0.0, query_dropout=0.0))
    inject(model, "read")
    batch = inputs()
    target = (torch.arange(7)[None].expand(3, -1) % 3 == 0).float() * batch["src_vid_mask"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-2)
    frozen = model.video_enc.mapping.linear.weight.clone()
    losses = []
    for _ in range(20):
        loss = saliency_bce(model(**batch)["saliency_scores"], target, batch["src_vid_mask"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    assert torch.equal(model.video_enc.mapping.linear.weight, frozen)  # the backbone stays frozen
