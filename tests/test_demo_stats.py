"""The demo's statistics: mean ± std, the paired two-stage bootstrap, verdicts, Holm, seeds for power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from readcli.demo.stats import (
    bootstrap_differences,
    bootstrap_draws,
    compare_to_reference,
    holm_adjust,
    mean_std,
    seeds_for_power,
)
from readcli.errors import InvalidValueError


def test_mean_std_is_the_sample_std_and_nan_for_one_seed() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    mean, std = mean_std([4.0])
    assert mean == 4.0 and math.isnan(std)
    with pytest.raises(InvalidValueError, match="at least one value"):
        mean_std([])


def _slow_bootstrap(method: np.ndarray, reference: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The protocol written out literally, one resample and one drawn seed at a time, on the same draws."""
    seeds, examples = method.shape
    out = []
    for drawn_seeds, drawn_examples in bootstrap_draws(
        np.random.default_rng(seed), resamples, seeds, examples
    ):
        for b in range(drawn_seeds.shape[0]):
            per_seed = []
            for j, s in enumerate(drawn_seeds[b]):
                idx = drawn_examples[b, j]
                per_seed.append(method[s, idx].mean() - reference[s, idx].mean())
            out.append(np.mean(per_seed))
    return np.array(out)


def test_vectorised_bootstrap_equals_the_literal_loop_on_the_same_stream() -> None:
    rng = np.random.default_rng(3)
    reference = rng.random((3, 7))
    method = reference + rng.normal(0.1, 0.3, size=(3, 7))
    # 2,300 resamples: three blocks, the last one partial
    slow = _slow_bootstrap(method, reference, 2300, seed=11)
    fast = bootstrap_differences((method - reference)[None], resamples=2300, seed=11)[:, 0]
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    result = compare_to_reference({"ref": reference, "x": method}, "ref", resamples=2300, seed=11)["x"]
    assert result.low == pytest.approx(np.quantile(slow, 0.025), abs=1e-12)
    assert result.high == pytest.approx(np.quantile(slow, 0.975), abs=1e-12)
    assert result.mean_diff == pytest.approx((method.mean(axis=1) - reference.mean(axis=1)).mean())


def test_two_seeds_one_example_by_enumeration() -> None:
    # d = (0, 2) per seed; drawing 2 seeds with replacement gives mean 0, 1, 2 with chance 1/4, 1/2, 1/4.
    reference = np.zeros((2, 1))
    method = np.array([[0.0], [2.0]])
    boot = bootstrap_differences((method - reference)[None], resamples=10_000, seed=0)[:, 0]
    values, counts = np.unique(boot, return_counts=True)
    np.testing.assert_allclose(values, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(counts / boot.size, [0.25, 0.5, 0.25], atol=0.02)
    # the 2.5 % and 97.5 % points fall inside the end atoms: the interval is exactly [0, 2]
    result = compare_to_reference({"ref": reference, "x": method}, "ref")["x"]
    assert (result.low, result.high, result.mean_diff) == (0.0, 2.0, 1.0)
    assert result.verdict == "not separable"


def test_one_seed_all_positive_differences_by_enumeration() -> None:
    # every resampled mean of (1, 2, 3) lies in [1, 3]; none is <= 0, so p = 2 / (B + 1)
    reference = np.zeros((1, 3))
    method = np.array([[1.0, 2.0, 3.0]])
    result = compare_to_reference({"ref": reference, "x": method}, "ref", resamples=999)["x"]
    assert 1.0 <= result.low < 2.0 < result.high <= 3.0
    assert result.verdict == "better"
    assert result.p_value == pytest.approx(2 / 1000)


def test_verdicts_better_worse_and_identical() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((5, 200))
    scores = {
        "ref": reference,
        "better": reference + 0.2 + rng.normal(0, 0.05, size=(5, 200)),
        "worse": reference - 0.2 + rng.normal(0, 0.05, size=(5, 200)),
        "same": reference.copy(),
    }
    result = compare_to_reference(scores, "ref", resamples=2000)
    assert set(result) == {"better", "worse", "same"}  # the reference is not compared with itself
    assert result["better"].verdict == result["better"].holm_verdict == "better"
    assert result["worse"].verdict == result["worse"].holm_verdict == "worse"
    assert result["better"].low > 0 and result["worse"].high < 0
    same = result["same"]
    assert (same.mean_diff, same.low, same.high) == (0.0, 0.0, 0.0)
    assert same.verdict == same.holm_verdict == "not separable"
    assert same.p_value == 1.0


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04
    # -> made monotone: 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjust([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm_adjust([0.02]), [0.02])


def test_holm_withdraws_a_marginal_verdict_among_many_comparisons() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, size=(5, 100))
    marginal = reference + rng.normal(0, 0.25, size=(5, 100)) + 0.04
    alone = compare_to_reference({"ref": reference, "x": marginal}, "ref", resamples=4000)["x"]
    assert alone.verdict == alone.holm_verdict == "better"
    assert 0.005 < alone.p_value < 0.05  # marginal: survives one comparison, not five
    crowd = {"ref": reference, "x": marginal, **{f"copy{i}": reference.copy() for i in range(4)}}
    among = compare_to_reference(crowd, "ref", resamples=4000)["x"]
    # the other methods do not change x's own interval or p-value (one set of draws for the table) ...
    assert (among.low, among.high) == pytest.approx((alone.low, alone.high), abs=1e-12)
    assert among.p_value == alone.p_value
    # ... but Holm multiplies the smallest of five p-values by five
    assert among.holm_p_value == pytest.approx(5 * alone.p_value)
    assert among.verdict == "better" and among.holm_verdict == "not separable"


def test_swapping_method_and_reference_mirrors_the_interval() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.random((4, 50)), rng.random((4, 50))
    ab = compare_to_reference({"a": a, "b": b}, "a", resamples=1500)["b"]
    ba = compare_to_reference({"a": a, "b": b}, "b", resamples=1500)["a"]
    assert ba.mean_diff == pytest.approx(-ab.mean_diff)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low))
    assert ba.p_value == pytest.approx(ab.p_value)


def test_bad_scores_are_refused_in_one_line() -> None:
    ok = np.zeros((3, 10))
    with pytest.raises(
        InvalidValueError, match=r"scores of 'x' have shape \(3, 9\), but 'ref' has \(3, 10\)"
    ):
        compare_to_reference({"ref": ok, "x": np.zeros((3, 9))}, "ref")
    with pytest.raises(InvalidValueError, match="reference method 'read-pvla' has no scores"):
        compare_to_reference({"ref": ok}, "read-pvla")
    with pytest.raises(InvalidValueError, match="expected \\(seeds, examples\\)"):
        compare_to_reference({"ref": np.zeros(10)}, "ref")
    with pytest.raises(InvalidValueError, match="NaN"):
        compare_to_reference({"ref": ok, "x": np.full((3, 10), np.nan)}, "ref")
    with pytest.raises(InvalidValueError, match="confidence 1.5"):
        compare_to_reference({"ref": ok}, "ref", confidence=1.5)
    assert compare_to_reference({"ref": ok}, "ref") == {}


def test_seeds_for_power_by_hand() -> None:
    # t_{0.975,5} / sqrt(6) = 2.571 / 2.449 = 1.05 > 1; t_{0.975,6} / sqrt(7) = 2.447 / 2.646 = 0.925 <= 1
    assert seeds_for_power(1.0, 1.0) == 7
    # half-width <= 0.5 sigma: t_{.975,16}/sqrt(17) = 0.514, t_{.975,17}/sqrt(18) = 0.497
    assert seeds_for_power(2.0, 1.0) == 18
    assert seeds_for_power(0.0) == 2
    assert seeds_for_power(1.0, 1.0, power=0.8) > seeds_for_power(1.0, 1.0)
    with pytest.raises(InvalidValueError, match="sigma_d -1"):
        seeds_for_power(-1.0)
