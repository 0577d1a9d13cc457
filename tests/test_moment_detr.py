"""Moment-DETR: official parity and layout, configuration parsing, and the AdapterHost behaviour."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from readcli.backbones.base import AdapterHost
from readcli.backbones.moment_detr.config import MomentDETRConfig, tiny_moment_detr_config
from readcli.backbones.moment_detr.model import MomentDETR, build_moment_detr
from readcli.backbones.registry import load_backbone
from readcli.errors import InputFileError, InvalidValueError

OUTPUT_KEYS = ("pred_logits", "pred_spans", "saliency_scores")
# readcli equals the official code bit for bit on one machine (bench/official_parity.py); against the
# stored outputs what is left is the float32 rounding of the machine that made them: measured 5.7e-7 ..
# 1.04e-6 over thread counts and kernel ISAs (docs/backbones.md). In float64 readcli's own rounding
# vanishes and the stored outputs' rounding is left alone: 4.9e-7, 6.8e-8, 6.1e-7 on every machine.
FLOAT32_TOLERANCE = 3e-6
FLOAT64_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def official(shared_data: Path) -> Path:
    return shared_data / "moment_detr"


@pytest.fixture(scope="module")
def reference(official: Path) -> dict[str, np.ndarray]:
    with np.load(official / "parity_outputs.npz") as archive:
        return {key: archive[key] for key in archive.files}


def _inputs(reference: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    names = ("src_txt", "src_txt_mask", "src_vid", "src_vid_mask")
    return {name: torch.from_numpy(reference[name]) for name in names}


def _tiny_batch(cfg: MomentDETRConfig, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two rows: (7 clips, 5 words) full, and (4 clips, 2 words) right-padded with zeros."""
    gen = torch.Generator().manual_seed(seed)
    vid_mask = torch.tensor([[1.0] * 7, [1.0] * 4 + [0.0] * 3])
    txt_mask = torch.tensor([[1.0] * 5, [1.0] * 2 + [0.0] * 3])
    src_vid = torch.randn(2, 7, cfg.v_feat_dim, generator=gen) * vid_mask[..., None]
    src_txt = torch.randn(2, 5, cfg.t_feat_dim, generator=gen) * txt_mask[..., None]
    return {"src_txt": src_txt, "src_txt_mask": txt_mask, "src_vid": src_vid, "src_vid_mask": vid_mask}


@pytest.fixture()
def tiny() -> MomentDETR:
    torch.manual_seed(0)
    return build_moment_detr(tiny_moment_detr_config()).eval()


# --- official parity and layout ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, FLOAT32_TOLERANCE), (torch.float64, FLOAT64_TOLERANCE)], ids=str
)
def test_parity_checkpoint_reproduces_official_outputs(
    official: Path, reference: dict[str, np.ndarray], dtype: torch.dtype, atol: float
) -> None:
    model = load_backbone(official / "parity_model.ckpt").to(dtype)
    assert not model.training  # eval mode: dropout off
    with torch.no_grad():
        out = model(**{name: value.to(dtype) for name, value in _inputs(reference).items()})
    # Every position is compared, padded clips included: the reference computes them too.
    for key in OUTPUT_KEYS:
        assert out[key].shape == reference[key].shape, key
        np.testing.assert_allclose(out[key].double().numpy(), reference[key], atol=atol, rtol=0, err_msg=key)
    assert [sorted(aux) for aux in out["aux_outputs"]] == [["pred_logits", "pred_spans"]]  # 2 layers - 1
    assert out["aux_outputs"][0]["pred_spans"].shape == (3, 10, 2)


def test_second_checkpoint_loads_and_gives_other_outputs(
    official: Path, reference: dict[str, np.ndarray]
) -> None:
    model = load_backbone(official / "second_model.ckpt")
    with torch.no_grad():
        out = model(**_inputs(reference))
    for key in OUTPUT_KEYS:
        assert out[key].shape == reference[key].shape
        assert np.abs(out[key].numpy() - reference[key]).max() > 1e-3, key


def _official_parity_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "official_parity.py"
    spec = importlib.util.spec_from_file_location("official_parity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_official_parity_script_says_when_the_official_checkout_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/official_parity.py compares with the official code only from a checkout it is given."""
    script = _official_parity_script(monkeypatch)
    assert script.main(["--official", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err and str(tmp_path / "absent") in err
    (tmp_path / "empty").mkdir()
    assert script.main(["--official", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no official checkout" in err and "moment_detr/model.py" in err


def test_fresh_model_from_official_options_has_the_official_layout(official: Path) -> None:
    config = MomentDETRConfig.from_opt_json(official / "clip_only_opt.json")
    rows = (official / "state_dict_layout.tsv").read_text().strip().splitlines()[1:]
    expected = [(key, tuple(int(n) for n in re.findall(r"\d+", shape)), dtype) for key, shape, dtype in
                (row.split("\t") for row in rows)]  # fmt: skip
    state = build_moment_detr(config, device="meta").state_dict()
    found = [(key, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in state.items()]
    assert found == expected  # same keys, in the same order, with the same shapes and dtypes
    assert len(found) == 92
    assert sum(int(np.prod(shape)) for _, shape, _ in found) == 4_228_873


def test_opt_json_and_checkpoint_namespace_give_the_same_config(official: Path) -> None:
    from readcli.backbones.checkpoint import load_official_checkpoint

    from_json = MomentDETRConfig.from_opt_json(official / "clip_only_opt.json")
    options = load_official_checkpoint(official / "parity_model.ckpt").options
    assert options["v_feat_dim"] == 514  # the pickled Namespace counts the 2 TEF dims ...
    assert from_json == MomentDETRConfig.from_options(options, tef_included=True)  # ... opt.json does not
    assert from_json.v_feat_dim == 514 and from_json.t_feat_dim == 512


# --- configuration -------------------------------------------------------------------------------


def _options(**changes: object) -> dict[str, object]:
    options: dict[str, object] = {**MomentDETRConfig().to_dict(), "lr": 1e-4, "ctx_mode": "video_tef"}
    options.update(changes)
    return options


def test_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(InvalidValueError, match="unknown Moment-DETR option.*use_mystery_gate"):
        MomentDETRConfig.from_options(_options(use_mystery_gate=True), tef_included=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pre_norm": True}, "pre_norm=True is not supported"),
        ({"position_embedding": "learned"}, "position_embedding='learned' is not supported"),
        ({"span_loss_type": "giou"}, "span_loss_type='giou'.*l1, ce"),
        ({"hidden_dim": 30, "nheads": 4}, "hidden_dim=30"),
        ({"enc_layers": True}, "enc_layers=True: expected type int"),
    ],
)
def test_bad_option_values_name_the_value(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        MomentDETRConfig.from_options(_options(**changes), tef_included=True)


def test_missing_option_and_training_only_options() -> None:
    options = _options()
    del options["num_queries"]
    with pytest.raises(InvalidValueError, match="missing num_queries"):
        MomentDETRConfig.from_options(options, tef_included=True)
    # opt.json form: the TEF width is added from ctx_mode; training options are ignored.
    config = MomentDETRConfig.from_options(_options(v_feat_dim=2816, bsz=32), tef_included=False)
    assert config.v_feat_dim == 2818
    no_tef = _options(ctx_mode="video", v_feat_dim=512)
    assert MomentDETRConfig.from_options(no_tef, tef_included=False).v_feat_dim == 512


def test_opt_json_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "opt.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputFileError, match="expected a JSON object"):
        MomentDETRConfig.from_opt_json(bad)
    bad.write_text('{"hidden_dim": 256}')
    with pytest.raises(InputFileError, match=r"opt\.json: Moment-DETR options are missing"):
        MomentDETRConfig.from_opt_json(bad)


# --- forward behaviour on a tiny model -----------------------------------------------------------


def test_outputs_shapes_and_padding_invariance(tiny: MomentDETR) -> None:
    batch = _tiny_batch(tiny.config)
    with torch.no_grad():
        out = tiny(**batch)
        row = tiny(batch["src_txt"][1:, :2], batch["src_txt_mask"][1:, :2],
                   batch["src_vid"][1:, :4], batch["src_vid_mask"][1:, :4])  # fmt: skip
    assert out["pred_logits"].shape == (2, 5, 2) and out["pred_spans"].shape == (2, 5, 2)
    assert out["saliency_scores"].shape == (2, 7)
    assert row["saliency_scores"].shape == (1, 4)  # a batch of one keeps its batch dimension
    # Padding changes nothing for the valid part: masks reach every attention.
    torch.testing.assert_close(out["pred_logits"][1:], row["pred_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["pred_spans"][1:], row["pred_spans"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["saliency_scores"][1:, :4], row["saliency_scores"], atol=1e-5, rtol=0)


def test_block_states_are_the_encoder_layers_split_by_modality(tiny: MomentDETR) -> None:
    batch = _tiny_batch(tiny.config)
    with torch.no_grad():
        assert "block_states" not in tiny(**batch)
        tiny.collect_block_states = True
        out = tiny(**batch)
    states = out["block_states"]
    assert states.video.shape == (2, 2, 7, 32) and states.text.shape == (2, 2, 5, 32)  # (L, B, N, d)
    assert torch.equal(states.video_mask, batch["src_vid_mask"].bool())
    assert torch.equal(states.text_mask, batch["src_txt_mask"].bool())
    # The last block's video states are the memory the saliency head reads.
    saliency = tiny.saliency_proj(states.video[-1]).squeeze(-1)
    torch.testing.assert_close(saliency, out["saliency_scores"])
    assert not torch.allclose(states.video[0], states.video[1])


Seen = dict[str, tuple[torch.Tensor | None, tuple[int, ...]]]


def _capture_segments(model: MomentDETR) -> Seen:
    """Record, from inside the feed-forward linears, what the model publishes for READ."""
    seen: Seen = {}

    def hook(name: str, stream: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen[name] = (model.sequence_context.get(stream), tuple(args[0].shape))

        return record

    model.get_submodule("transformer.encoder.layers.0.linear2").register_forward_pre_hook(
        hook("encoder", "encoder")
    )
    model.get_submodule("transformer.decoder.layers.1.linear2").register_forward_pre_hook(
        hook("decoder", "decoder")
    )
    return seen


def test_segment_ids_published_during_forward(tiny: MomentDETR) -> None:
    seen = _capture_segments(tiny)
    batch = _tiny_batch(tiny.config)
    with torch.no_grad():
        tiny(**batch)
    ids, shape = seen["encoder"]
    assert shape == (12, 2, 64)  # (T, B, F): the encoder is sequence-first
    expected = torch.tensor([[0] * 7 + [1] * 5, [0] * 4 + [-1] * 3 + [1] * 2 + [-1] * 3])
    assert ids is not None and torch.equal(ids, expected)
    assert seen["decoder"] == (None, (5, 2, 64))  # query slots: no ids, one segment in slot order
    assert tiny.sequence_context.get("encoder") is None  # restored after the forward


class _StandInPrompts(nn.Module):
    def __init__(self, n_video: int, n_text: int, dim: int) -> None:
        super().__init__()
        self.video = nn.Parameter(torch.randn(n_video, dim))
        self.text = nn.Parameter(torch.randn(n_text, dim))


def test_prompt_tokens_keep_official_shapes_and_train(tiny: MomentDETR) -> None:
    batch = _tiny_batch(tiny.config)
    with torch.no_grad():
        plain = tiny(**batch)
    seen = _capture_segments(tiny)
    tiny.prompt_tokens = _StandInPrompts(3, 2, 32)
    assert "prompt_tokens.video" in dict(tiny.named_parameters())
    tiny.collect_block_states = True
    out = tiny(**batch)
    for key in OUTPUT_KEYS:
        assert out[key].shape == plain[key].shape
    assert not torch.allclose(out["pred_logits"], plain["pred_logits"])
    states = out["block_states"]
    assert states.video.shape == (2, 2, 7, 32) and states.text.shape == (2, 2, 5, 32)
    ids, shape = seen["encoder"]
    assert shape == (17, 2, 64)  # 3 + 7 video positions, 2 + 5 text positions
    assert ids is not None and torch.equal(ids[1], torch.tensor([0] * 7 + [-1] * 3 + [1] * 4 + [-1] * 3))
    out["pred_logits"].sum().backward()
    for name in ("prompt_tokens.video", "prompt_tokens.text"):
        grad = tiny.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    tiny.prompt_tokens = None  # removable again
    with torch.no_grad():
        torch.testing.assert_close(tiny(**batch)["pred_logits"], plain["pred_logits"])


def test_prompt_tokens_of_the_wrong_width_are_refused(tiny: MomentDETR) -> None:
    tiny.prompt_tokens = _StandInPrompts(2, 2, 16)
    with pytest.raises(InvalidValueError, match=r"prompt_tokens\.video must be a \(n_tokens, 32\) tensor"):
        tiny(**_tiny_batch(tiny.config))


def test_adapter_targets_name_real_modules(tiny: MomentDETR) -> None:
    assert isinstance(tiny, AdapterHost) and tiny.architecture_name() == "moment_detr"
    targets = tiny.adapter_targets()
    modules = dict(tiny.named_modules())

    def matches(pattern: str) -> list[str]:
        return [name for name in modules if re.fullmatch(pattern, name)]

    ffn = {t.stream: matches(t.pattern) for t in targets.feed_forward}
    assert ffn == {
        "encoder": ["transformer.encoder.layers.0.linear2", "transformer.encoder.layers.1.linear2"],
        "decoder": ["transformer.decoder.layers.0.linear2", "transformer.decoder.layers.1.linear2"],
    }
    assert all(not t.batch_first for t in targets.feed_forward)
    assert [m for p in targets.partial for m in matches(p)] == [
        "transformer.encoder.layers.1", "transformer.decoder.layers.1"
    ]  # fmt: skip
    projection = [m for p in targets.projection for m in matches(p)]
    assert projection == ["class_embed", "span_embed.layers.2", "saliency_proj"]
    lora = [m for p in targets.lora for m in matches(p)]
    assert len(lora) == 8 and all(isinstance(modules[m], nn.Linear) for m in lora)
    assert not any("out_proj" in m for m in lora)
    assert targets.prompt is not None and (targets.prompt.video_dim, targets.prompt.text_dim) == (32, 32)


def test_variants_and_input_errors() -> None:
    cfg = tiny_moment_detr_config(
        span_loss_type="ce", contrastive_align_loss=True, aux_loss=False, n_input_proj=3
    )
    model = build_moment_detr(cfg).eval()
    with torch.no_grad():
        out = model(**_tiny_batch(cfg))
    assert out["pred_spans"].shape == (2, 5, 2 * cfg.max_v_l)  # "ce" spans are logits over clips
    assert out["proj_txt_mem"].shape == (2, 5, cfg.contrastive_hdim) and "aux_outputs" not in out
    batch = _tiny_batch(cfg)
    with pytest.raises(InvalidValueError, match=r"src_vid has shape \(2, 7, 18\).*\(batch, length, 20\)"):
        build_moment_detr(tiny_moment_detr_config(v_feat_dim=20))(**batch)
    with pytest.raises(InvalidValueError, match="src_txt_mask has shape"):
        model(batch["src_txt"], batch["src_txt_mask"][:, :3], batch["src_vid"], batch["src_vid_mask"])


def test_train_mode_applies_dropout(tiny: MomentDETR) -> None:
    batch = _tiny_batch(tiny.config)
    tiny.train()
    with torch.no_grad():
        first, second = tiny(**batch)["pred_logits"], tiny(**batch)["pred_logits"]
    assert not torch.allclose(first, second)
    tiny.eval()
    with torch.no_grad():
        torch.testing.assert_close(tiny(**batch)["pred_logits"], tiny(**batch)["pred_logits"])


# --- frozen attention is recomputed, not stored ----------------------------------------------------


def _read_step(recompute: bool) -> tuple[float, dict[str, torch.Tensor], int]:
    """One training forward/backward of a READ-injected tiny model (dropout on): loss, adapter grads,
    and the bytes autograd saved for the backward pass."""
    from readcli.adapters import method_settings
    from readcli.adapters.inject import inject

    torch.manual_seed(0)
    model = build_moment_detr(tiny_moment_detr_config())
    inject(model, method_settings("read"))
    model.train()
    for layer in model.transformer.encoder.layers:
        layer.recompute_frozen_attention = recompute
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    torch.manual_seed(1)  # the dropout masks
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**_tiny_batch(model.config))
        loss = out["pred_spans"].square().sum() + out["saliency_scores"].square().sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return float(loss), grads, sum(saved.values())


def test_frozen_attention_is_recomputed_with_identical_results() -> None:
    loss_stored, grads_stored, bytes_stored = _read_step(recompute=False)
    loss_recomputed, grads_recomputed, bytes_recomputed = _read_step(recompute=True)
    assert loss_recomputed == loss_stored
    assert grads_recomputed.keys() == grads_stored.keys() and len(grads_stored) > 0
    for name, grad in grads_stored.items():
        assert torch.equal(grads_recomputed[name], grad), name
    assert bytes_recomputed < bytes_stored
