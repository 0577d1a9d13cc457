"""READ's recurrent adapter, its segment packing, the Houlsby adapter and the method settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from readcli.adapters.method import default_bottleneck
from readcli.adapters.methods.adapter import HoulsbyAdapter
from readcli.adapters.methods.read import ReadAdapter
from readcli.adapters.registry import METHODS
from readcli.adapters.segments import SegmentPlan
from readcli.adapters.settings import method_settings, settings_from_dict
from readcli.backbones.contract import SequenceContext, segment_ids_from_masks
from readcli.errors import InvalidValueError

RNNS = ("rnn", "gru", "lstm")


def _adapter(rnn: str = "rnn", d: int = 12, k: int = 5, seed: int = 0) -> ReadAdapter:
    """An adapter with a random W_up, so the recurrent branch is visible in the output."""
    torch.manual_seed(seed)
    adapter = ReadAdapter(d, k, rnn=rnn)
    nn.init.normal_(adapter.up.weight, std=0.5)
    return adapter


def _ids() -> torch.Tensor:
    """Two rows of [video; text] with padding inside each modality."""
    video = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    text = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    return segment_ids_from_masks(video, text)  # (2, 9)


def _reference(adapter: ReadAdapter, o: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Each (row, segment) run on its own through the RNN, one at a time."""
    out = o.clone()
    for b in range(o.shape[0]):
        for s in ids[b].unique().tolist():
            if s < 0:
                continue
            positions = (ids[b] == s).nonzero().squeeze(1)
            h = adapter.rnn(adapter.down(o[b, positions]).unsqueeze(0))[0][0]  # (L, k)
            out[b, positions] = o[b, positions] + adapter.up(torch.nn.functional.gelu(h))
    return out


@pytest.mark.parametrize("rnn", RNNS)
def test_identity_at_init_and_usual_rnn_init(rnn: str) -> None:
    torch.manual_seed(0)
    adapter = ReadAdapter(16, 4, rnn=rnn)
    o = torch.randn(3, 7, 16)
    assert torch.equal(adapter(o), o)
    assert torch.equal(adapter(o, _ids()[:, :7].repeat(2, 1)[:3]), o)
    assert not adapter.up.weight.any()
    assert all(p.abs().sum() > 0 for p in adapter.rnn.parameters())  # not the paper's all-zero dead point
    std = adapter.down.weight.std().item()
    assert 0.5 * (2 / 16) ** 0.5 < std < 1.5 * (2 / 16) ** 0.5  # Kaiming-normal, fan_in = d


@pytest.mark.parametrize("rnn", RNNS)
def test_segments_match_a_per_segment_reference(rnn: str) -> None:
    adapter, ids = _adapter(rnn), _ids()
    o = torch.randn(2, 9, 12)
    torch.testing.assert_close(adapter(o, ids), _reference(adapter, o, ids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rnn", RNNS)
def test_padding_never_changes_valid_outputs_and_gets_nothing(rnn: str) -> None:
    adapter, ids = _adapter(rnn), _ids()
    o = torch.randn(2, 9, 12)
    noisy = torch.where((ids < 0).unsqueeze(-1), 1e3 * torch.randn(2, 9, 12), o)
    out, out_noisy = adapter(o, ids), adapter(noisy, ids)
    valid = ids >= 0
    assert torch.equal(out[valid], out_noisy[valid])
    assert torch.equal(out_noisy[~valid], noisy[~valid])  # the adapter adds exactly nothing at padding
    assert not torch.equal(out[valid], o[valid])  # and something elsewhere


def test_recurrence_never_crosses_the_modality_boundary() -> None:
    adapter, ids = _adapter(), _ids()
    o = torch.randn(2, 9, 12)
    other = o.clone()
    other[:, :5] += torch.randn(2, 5, 12)  # change every video position
    text = ids == 1
    assert torch.equal(adapter(o, ids)[text], adapter(other, ids)[text])


def test_interleaved_segments_and_all_padding() -> None:
    adapter = _adapter()
    ids = torch.tensor([[0, 1, 0, -1, 1, 0], [2, 2, -1, 0, 0, 2]])
    o = torch.randn(2, 6, 12)
    torch.testing.assert_close(adapter(o, ids), _reference(adapter, o, ids), rtol=1e-5, atol=1e-6)
    nothing = torch.full((2, 6), -1)
    assert torch.equal(adapter(o, nothing), o)


def test_without_ids_is_one_segment_and_exact_for_right_padding() -> None:
    adapter = _adapter()
    o = torch.randn(2, 6, 12)
    one = torch.zeros(2, 6, dtype=torch.long)
    torch.testing.assert_close(adapter(o), adapter(o, one), rtol=1e-5, atol=1e-6)
    right = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, -1, -1]])
    valid = right >= 0
    torch.testing.assert_close(adapter(o)[valid], adapter(o, right)[valid], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rnn", RNNS)
def test_batch_first_and_sequence_first_agree(rnn: str) -> None:
    adapter, ids = _adapter(rnn), _ids()
    o = torch.randn(2, 9, 12)  # (B, T, d)
    seq_first = adapter(o.transpose(0, 1).contiguous(), ids, batch_first=False)  # (T, B, d)
    assert seq_first.shape == (9, 2, 12)
    torch.testing.assert_close(seq_first.transpose(0, 1), adapter(o, ids), rtol=0, atol=0)


def test_batch_rows_are_independent() -> None:
    adapter, ids = _adapter(), _ids()
    o = torch.randn(2, 9, 12)
    alone = adapter(o[1:], ids[1:])
    torch.testing.assert_close(adapter(o, ids)[1:], alone, rtol=1e-5, atol=1e-6)


def test_segment_plan_round_trip_and_shapes() -> None:
    ids = _ids()
    plan = SegmentPlan.build(ids)
    assert (plan.rows, plan.row_length) == (4, 5)  # 2 rows x 2 segments, longest segment 5
    x = torch.randn(2, 9, 3)
    packed = plan.pack(x)
    assert torch.equal(packed[1, :3], x[0, 5:8])  # row 0's text, front-aligned
    assert not packed[3, 2:].any()  # row 1's text has 2 words, then zeros
    back = plan.unpack(packed)
    valid = ids >= 0
    assert torch.equal(back[valid], x[valid]) and not back[~valid].any()


def test_bad_segment_ids_are_refused() -> None:
    adapter = _adapter()
    with pytest.raises(InvalidValueError, match=r"do not fit a feed-forward output of shape \(2, 9, 12\)"):
        adapter(torch.randn(2, 9, 12), torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(InvalidValueError, match="must be integers"):
        SegmentPlan.build(torch.zeros(2, 9))


def _moved_after_steps(adapter: ReadAdapter, steps: int) -> dict[str, bool]:
    before = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    optimiser = torch.optim.AdamW(adapter.parameters(), lr=1e-2, weight_decay=0.0)
    o, target = torch.randn(2, 9, 12), torch.randn(2, 9, 12)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(adapter(o, _ids()), target).backward()
        optimiser.step()
    return {n: not torch.equal(p, before[n]) for n, p in adapter.named_parameters()}


@pytest.mark.parametrize("rnn", RNNS)
def test_every_tensor_moves_within_two_steps(rnn: str) -> None:
    torch.manual_seed(0)
    after_one = _moved_after_steps(ReadAdapter(12, 5, rnn=rnn), 1)
    assert after_one["up.weight"] and not after_one["down.weight"]  # W_up = 0 blocks the rest at step 1
    torch.manual_seed(0)
    after_two = _moved_after_steps(ReadAdapter(12, 5, rnn=rnn), 2)
    assert all(after_two.values()), [n for n, moved in after_two.items() if not moved]


def test_the_papers_literal_init_is_a_dead_point() -> None:
    torch.manual_seed(0)
    adapter = ReadAdapter(12, 5)
    for parameter in adapter.rnn.parameters():
        nn.init.zeros_(parameter)  # §4.1 taken literally: RNN weights and biases zero, W_up zero
    moved = _moved_after_steps(adapter, 3)
    assert not any(moved.values())


def test_houlsby_is_identity_at_init_then_trains() -> None:
    torch.manual_seed(0)
    adapter = HoulsbyAdapter(12, 4)
    o = torch.randn(2, 5, 12)
    assert torch.equal(adapter(o), o)
    before = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    optimiser = torch.optim.AdamW(adapter.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(2):
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(adapter(o), torch.randn(2, 5, 12)).backward()
        optimiser.step()
    assert all(not torch.equal(p, before[n]) for n, p in adapter.named_parameters())


@pytest.mark.parametrize(
    ("method", "knobs", "message"),
    [
        (
            "adapterz",
            {},
            "unknown method 'adapterz': choose one of full, partial, bias, proj, lora, prompt, adapter, "
            "read, ia3",
        ),
        ("read", {"bottleneck": 0}, "bottleneck k = 0 is invalid: use a positive integer"),
        ("adapter", {"bottleneck": -3}, "bottleneck k = -3 is invalid: use a positive integer"),
        ("read", {"rnn": "transformer"}, "unknown RNN type 'transformer': choose one of rnn, gru, lstm"),
        ("lora", {"rank": 0}, "rank = 0 is invalid"),
        ("lora", {"alpha": float("nan")}, "alpha = nan is invalid"),
        ("read", {"dropout": 1.0}, r"dropout = 1.0 is invalid: use a probability in \[0, 1\)"),
        ("prompt", {"tokens": True}, "tokens = True is invalid"),
        (
            "lora",
            {"bottleneck": 4},
            "bottleneck is not a setting of method 'lora': its settings are rank, alpha, dropout",
        ),
        ("full", {"rnn": "gru"}, "rnn is not a setting of method 'full': it has no settings"),
        ("read", {"width": 3}, "unknown method setting 'width': the methods' settings are alpha, bottleneck"),
    ],
)
def test_bad_settings_give_one_line_naming_value_and_choices(
    method: str, knobs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message) as info:
        method_settings(method, **knobs)
    assert "\n" not in str(info.value)


def test_adapter_constructor_checks_its_arguments() -> None:
    with pytest.raises(InvalidValueError, match="unknown RNN type 'elman'"):
        ReadAdapter(8, 2, rnn="elman")
    with pytest.raises(InvalidValueError, match="bottleneck k = 0"):
        ReadAdapter(8, 0)


def test_settings_round_trip_and_defaults() -> None:
    settings = method_settings("read", bottleneck=8, rnn="gru")
    assert settings_from_dict(settings.to_dict()) == settings
    assert settings.to_dict() == {"method": "read", "bottleneck": 8, "dropout": 0.0, "rnn": "gru"}
    lora = method_settings("lora", rank=4, bottleneck=None, rnn="rnn")  # None and --rnn's default: not given
    assert settings_from_dict(lora.to_dict()) == lora and lora.to_dict()["rank"] == 4
    k = default_bottleneck(768)
    assert method_settings("read").resolved(768) == method_settings("read", bottleneck=k)
    assert default_bottleneck(768) == 64 and default_bottleneck(32) == 8
    assert method_settings("lora").resolved(768) == method_settings("lora")
    assert list(METHODS) == ["full", "partial", "bias", "proj", "lora", "prompt", "adapter", "read", "ia3"]


def test_context_caches_derived_plans_per_ids_tensor() -> None:
    context = SequenceContext()
    ids = _ids()
    builds: list[int] = []

    def build(t: torch.Tensor) -> int:
        builds.append(1)
        return len(builds)

    with context.use(encoder=ids):
        assert context.derived("encoder", ids, build) == context.derived("encoder", ids, build) == 1
    other = ids.clone()
    assert context.derived("encoder", other, build) == 2  # new ids tensor: rebuilt, never stale
    assert context.get("encoder") is None
    context.set_past_length("decoder", 3)
    assert context.past_length("decoder") == 3 and context.past_length("encoder") == 0
    context.set_past_length("decoder", 0)
    assert context.past_length("decoder") == 0


def test_package_exports_resolve_and_context_stays_light() -> None:
    import subprocess
    import sys

    import readcli.adapters as adapters

    for name in adapters.__all__:
        assert getattr(adapters, name) is not None
    code = (
        "import sys, readcli.adapters, readcli.backbones.contract; "
        "assert 'peft' not in sys.modules and 'safetensors' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
