"""The PVLA loss, its settings, the cosine cost and the vectorised mass sweep."""

from __future__ import annotations

import pytest
import torch

import readcli.alignment.sweep as sweep_module
from readcli.alignment import (
    PVLASettings,
    cosine_cost,
    partial_ot,
    partial_ot_sweep,
    pvla_loss,
    sweep_masses,
)
from readcli.backbones.base import BlockStates
from readcli.errors import InvalidValueError


def _states(
    seed: int = 0, blocks: int = 3, batch: int = 4, n_v: int = 10, n_l: int = 6, d: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(blocks, batch, n_v, d, generator=g)
    text = torch.randn(blocks, batch, n_l, d, generator=g)
    video_mask = torch.ones(batch, n_v, dtype=torch.bool)
    text_mask = torch.ones(batch, n_l, dtype=torch.bool)
    video_mask[1, 7:] = False
    text_mask[2, 4:] = False
    return video, text, video_mask, text_mask


def test_cosine_cost_matches_autograd_through_normalize() -> None:
    g = torch.Generator().manual_seed(1)
    video = torch.randn(2, 5, 4, dtype=torch.float64, generator=g)
    text = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
    video[0, 1] = 0.0  # a zero (padding) vector: cost 1, finite gradient
    assert torch.autograd.gradcheck(lambda v, t: cosine_cost(v, t), (video[1:].requires_grad_(), text[1:]))
    weights = torch.rand(2, 5, 3, dtype=torch.float64, generator=g)
    ours_v, ours_t = video.clone().requires_grad_(), text.clone().requires_grad_()
    ref_v, ref_t = video.clone().requires_grad_(), text.clone().requires_grad_()
    ours = cosine_cost(ours_v, ours_t)
    norm = torch.nn.functional.normalize
    reference = 1 - norm(ref_v, dim=-1, eps=1e-8) @ norm(ref_t, dim=-1, eps=1e-8).transpose(1, 2)
    torch.testing.assert_close(ours, reference)
    assert ours[0, 1].eq(1).all()
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    torch.testing.assert_close(ours_v.grad, ref_v.grad)
    torch.testing.assert_close(ours_t.grad, ref_t.grad)


def test_cosine_cost_is_float32_under_autocast_and_for_half_inputs() -> None:
    video, text = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        cost = cosine_cost(video, text)
    assert cost.dtype == torch.float32
    torch.testing.assert_close(cost, cosine_cost(video, text), atol=0, rtol=0)
    half = video.half().requires_grad_()
    cost = cosine_cost(half, text.half())
    assert cost.dtype == torch.float32
    cost.sum().backward()
    assert half.grad is not None and half.grad.dtype == torch.float16


def test_loss_is_the_block_sum_of_batch_means() -> None:
    video, text, video_mask, text_mask = _states()
    settings = PVLASettings(weight=0.3, mass=0.4, tau=0.1)
    loss = pvla_loss(video, text, video_mask, text_mask, settings=settings)
    expected = torch.zeros(())
    for block in range(3):
        cost = cosine_cost(video[block], text[block])
        _, distance = partial_ot(cost, video_mask, text_mask, mass=0.4, tau=0.1)
        expected = expected + distance.mean()
    torch.testing.assert_close(loss, 0.3 * expected)
    mean = pvla_loss(
        video,
        text,
        video_mask,
        text_mask,
        settings=PVLASettings(weight=0.3, mass=0.4, tau=0.1, blocks="mean"),
    )
    torch.testing.assert_close(mean, loss / 3)


def test_loss_accepts_lists_single_blocks_and_block_states() -> None:
    video, text, video_mask, text_mask = _states()
    stacked = pvla_loss(video, text, video_mask, text_mask)
    listed = pvla_loss(list(video), list(text), video_mask, text_mask)
    states = pvla_loss(BlockStates(video=video, text=text, video_mask=video_mask, text_mask=text_mask))
    torch.testing.assert_close(listed, stacked)
    torch.testing.assert_close(states, stacked)
    one = pvla_loss(video[0], text[0], video_mask, text_mask)
    torch.testing.assert_close(one, pvla_loss(video[:1], text[:1], video_mask, text_mask))


def test_gradient_reaches_valid_states_only_and_ignores_padding_content() -> None:
    video, text, video_mask, text_mask = _states()
    video[:, 1, 7:] = float("nan")  # padding may hold anything
    video = video.requires_grad_()
    text = text.requires_grad_()
    loss = pvla_loss(video, text, video_mask, text_mask)
    assert torch.isfinite(loss)
    loss.backward()
    assert video.grad is not None and text.grad is not None
    assert torch.isfinite(video.grad).all() and torch.isfinite(text.grad).all()
    assert video.grad[:, 1, 7:].abs().sum() == 0 and text.grad[:, 2, 4:].abs().sum() == 0
    assert video.grad[:, 0].abs().sum() > 0


def test_weight_zero_skips_the_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    import readcli.alignment.loss as loss_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the solver must not run at weight 0")

    monkeypatch.setattr(loss_module, "solve_partial_ot", refuse)
    video, text, video_mask, text_mask = _states()
    assert pvla_loss(video, text, video_mask, text_mask, settings=PVLASettings(weight=0.0)) == 0


def test_bfloat16_states_under_autocast() -> None:
    video, text, video_mask, text_mask = _states()
    reference = pvla_loss(video.bfloat16().float(), text.bfloat16().float(), video_mask, text_mask)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = pvla_loss(video.bfloat16(), text.bfloat16(), video_mask, text_mask)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"weight": -1.0}, "weight -1.0"),
        ({"mass": 0.0}, "mass 0.0"),
        ({"mass": 1.2}, "mass 1.2"),
        ({"mass_mode": "best"}, "mass_mode 'best' is unknown: choose one of fixed, sweep"),
        ({"tau": 0.0}, "tau 0.0"),
        ({"tau": float("inf")}, "tau inf"),
        ({"max_iter": 0}, "max_iter 0"),
        ({"tol": -0.1}, "tol -0.1"),
        ({"blocks": "max"}, "blocks 'max' is unknown: choose one of sum, mean"),
    ],
)
def test_settings_validate(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        PVLASettings(**kwargs)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_bad_states_name_the_problem() -> None:
    video, text, video_mask, text_mask = _states()
    with pytest.raises(InvalidValueError, match="do not match"):
        pvla_loss(video, text[..., :8], video_mask, text_mask)
    with pytest.raises(InvalidValueError, match="do not match"):
        pvla_loss(video, text[:2], video_mask, text_mask)
    with pytest.raises(InvalidValueError, match=r"video_mask has shape \(4, 9\)"):
        pvla_loss(video, text, video_mask[:, :9], text_mask)
    with pytest.raises(InvalidValueError, match=r"text_states blocks have shapes"):
        pvla_loss(list(video), [text[0], text[1, :, :3]], video_mask, text_mask)
    with pytest.raises(InvalidValueError, match="needs text_states"):
        pvla_loss(video)
    bad = text.clone()
    bad[2, 0, 1, 3] = float("inf")
    with pytest.raises(
        InvalidValueError, match=r"text_states has NaN or inf values \(block 2, sample 0, token 1\)"
    ):
        pvla_loss(video, bad, video_mask, text_mask)


def test_sweep_grid_follows_the_valid_counts() -> None:
    video_mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3, [False] * 5])
    text_mask = torch.tensor([[True] * 4, [True] * 4, [True] * 4])
    masses, used = sweep_masses(video_mask, text_mask)
    assert masses.shape == (3, 4)
    torch.testing.assert_close(masses[0], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(masses[1], torch.tensor([0.5, 1.0, 0.0, 0.0]))
    assert used.sum(1).tolist() == [4, 2, 0]


def test_sweep_is_one_solver_call_equal_to_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    video, text, video_mask, text_mask = _states(blocks=1)
    video_mask[3] = False  # an empty sample: distance 0
    cost = cosine_cost(video[0], text[0]).requires_grad_()
    calls: list[int] = []
    original = sweep_module.solve_partial_ot

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_module, "solve_partial_ot", counting)
    solution = partial_ot_sweep(cost, video_mask, text_mask, tau=0.1)
    assert len(calls) == 1
    masses, used = sweep_masses(video_mask, text_mask)
    for i in range(3):
        for k in range(int(used[i].sum())):
            _, alone = partial_ot(
                cost[i : i + 1],
                video_mask[i : i + 1],
                text_mask[i : i + 1],
                mass=float(masses[i, k]),
                tau=0.1,
            )
            assert abs(alone.item() - solution.distances[i, k].item()) < 1e-6
    assert solution.distance[3] == 0 and torch.isinf(solution.distances[3]).all()
    # with costs >= 0 the distance grows with the mass: the minimum is the smallest mass
    for i in range(3):
        row = solution.distances[i][used[i]]
        assert (row[1:] > row[:-1]).all()
        assert solution.mass[i] == masses[i, 0]
    solution.distance.sum().backward()
    assert cost.grad is not None and torch.isfinite(cost.grad).all()


def test_sweep_mode_in_the_loss_equals_the_smallest_fixed_mass() -> None:
    video, text, video_mask, text_mask = _states(blocks=2, batch=3, n_v=8, n_l=4)
    text_mask[:] = True
    video_mask[:] = True
    sweep = pvla_loss(video, text, video_mask, text_mask, settings=PVLASettings(mass_mode="sweep", tau=0.1))
    smallest = pvla_loss(video, text, video_mask, text_mask, settings=PVLASettings(mass=0.25, tau=0.1))
    torch.testing.assert_close(sweep, smallest)
