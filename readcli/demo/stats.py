"""The demo's statistics: mean ± std over seeds, the paired two-stage bootstrap of each method's
difference to a reference method (READ-PVLA), Holm–Bonferroni verdicts, and how many seeds a pilot
says are needed. The protocol is written down in docs/demo.md.

Scores come as arrays (S, Q): a metric per test example (Q, shared by every method and seed) for S
paired seeds (the same seed index means the same low-resource subset and order for every method).
The metric of one (method, seed) is the mean over its examples.

The bootstrap, `resamples` times with one fixed RNG stream:
1. draw S seed indices with replacement;
2. for each drawn seed, draw Q example indices with replacement (the same indices for the method and
   the reference, and for every method: one set of draws serves the whole table);
3. recompute both means on the drawn examples of the drawn seed and take the difference
   (method − reference); average the differences over the drawn seeds.
The interval is the percentile interval of those averages. Because the example indices are shared,
the difference of the two means equals the mean of the per-example differences, which is what the
code averages (a bincount of the drawn indices times the difference matrix, one BLAS product per
seed, instead of a Python loop over resamples).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from readcli.errors import InvalidValueError

Verdict = Literal["better", "worse", "not separable"]

# Resamples drawn per block: bounds memory (CHUNK x S x Q example indices) and fixes the RNG stream,
# so results depend on (resamples, seed) only, never on the machine.
CHUNK = 1000
MAX_SEEDS = 10_000


@dataclass(frozen=True)
class Comparison:
    """One method against the reference: the mean per-seed difference (method − reference) and its
    two-stage bootstrap percentile interval.

    verdict: "better" if low > 0, "worse" if high < 0, else "not separable" (uncorrected).
    p_value: two-sided bootstrap p-value of "no difference", 2·min(P*(δ ≤ 0), P*(δ ≥ 0)) with the
    (count + 1) / (resamples + 1) correction, so it is never 0.
    holm_verdict: the verdict kept only if the Holm–Bonferroni-adjusted p-value across every compared
    method is below 1 − confidence, else "not separable" (never stronger than `verdict`).
    holm_p_value: that adjusted p-value.
    """

    mean_diff: float
    low: float
    high: float
    verdict: Verdict
    p_value: float
    holm_verdict: Verdict
    holm_p_value: float


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of per-seed values; the std is NaN for one seed."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise InvalidValueError("mean_std needs at least one value, got none")
    std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return float(np.mean(array)), std


def _check_scores(scores: Mapping[str, np.ndarray], reference: str) -> tuple[int, int]:
    if reference not in scores:
        raise InvalidValueError(
            f"reference method {reference!r} has no scores: methods with scores are {', '.join(scores)}"
        )
    shape = np.shape(scores[reference])
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise InvalidValueError(f"scores of {reference!r} have shape {shape}: expected (seeds, examples)")
    for name, array in scores.items():
        if np.shape(array) != shape:
            raise InvalidValueError(
                f"scores of {name!r} have shape {np.shape(array)}, but {reference!r} has {shape}: every "
                "method needs the same (seeds, examples)"
            )
        if not np.all(np.isfinite(array)):
            raise InvalidValueError(f"scores of {name!r} contain NaN or infinite values")
    return int(shape[0]), int(shape[1])


def bootstrap_draws(
    rng: np.random.Generator, resamples: int, seeds: int, examples: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The bootstrap's RNG stream, in blocks: (drawn seeds (n, S), drawn examples (n, S, Q)).

    All seed draws come first (one (resamples, S) array), then the example draws block by block."""
    seed_draws = rng.integers(0, seeds, size=(resamples, seeds))  # (B, S)
    for start in range(0, resamples, CHUNK):
        stop = min(start + CHUNK, resamples)
        yield seed_draws[start:stop], rng.integers(0, examples, size=(stop - start, seeds, examples))


def bootstrap_differences(diffs: np.ndarray, *, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of the mean difference: diffs (M, S, Q) per-example differences ->
    (resamples, M), one two-stage resample per row, shared by the M methods."""
    methods, seeds, examples = diffs.shape
    out = np.empty((resamples, methods))
    rng = np.random.default_rng(seed)
    start = 0
    for drawn_seeds, drawn_examples in bootstrap_draws(rng, resamples, seeds, examples):
        n = drawn_seeds.shape[0]
        slots = n * seeds
        # counts[r, q]: how often example q was drawn in slot r (one slot = one drawn seed of one resample)
        flat = (np.arange(slots)[:, None] * examples + drawn_examples.reshape(slots, examples)).ravel()
        counts = np.bincount(flat, minlength=slots * examples).reshape(slots, examples)  # (n·S, Q)
        counts = counts.astype(np.float64)
        slot_seed = drawn_seeds.ravel()  # (n·S,)
        slot_means = np.empty((slots, methods))  # mean difference of each slot, per method
        for s in range(seeds):
            rows = slot_seed == s
            slot_means[rows] = counts[rows] @ diffs[:, s, :].T / examples  # (r, Q) @ (Q, M)
        out[start : start + n] = slot_means.reshape(n, seeds, methods).mean(axis=1)  # (n, M)
        start += n
    return out


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values: sorted ascending, p_(i) · (m − i + 1), made monotone and
    capped at 1, returned in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _verdict(low: float, high: float) -> Verdict:
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not separable"


def _p_values(boot: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-values per column of boot (B, M)."""
    resamples = boot.shape[0]
    at_most = (np.count_nonzero(boot <= 0, axis=0) + 1) / (resamples + 1)
    at_least = (np.count_nonzero(boot >= 0, axis=0) + 1) / (resamples + 1)
    return np.minimum(1.0, 2 * np.minimum(at_most, at_least))


def compare_to_reference(
    scores: Mapping[str, np.ndarray],
    reference: str,
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Comparison]:
    """Each method other than `reference` against it: scores[method] is (S, Q), S paired seeds by Q
    shared test examples. Returns {method: Comparison}; the Holm family is every compared method."""
    if resamples < 1:
        raise InvalidValueError(f"resamples {resamples} is out of range: use 1 or more")
    if not 0 < confidence < 1:
        raise InvalidValueError(f"confidence {confidence} is out of range: use a value between 0 and 1")
    _check_scores(scores, reference)
    names = [name for name in scores if name != reference]
    if not names:
        return {}
    base = np.asarray(scores[reference], dtype=np.float64)  # (S, Q)
    diffs = np.stack([np.asarray(scores[n], dtype=np.float64) - base for n in names])  # (M, S, Q)
    boot = bootstrap_differences(diffs, resamples=resamples, seed=seed)  # (B, M)
    alpha = 1 - confidence
    lows, highs = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)  # (M,) each
    p_values = _p_values(boot)
    holm = holm_adjust(p_values)
    result = {}
    for i, name in enumerate(names):
        verdict = _verdict(float(lows[i]), float(highs[i]))
        result[name] = Comparison(
            mean_diff=float(diffs[i].mean()),
            low=float(lows[i]),
            high=float(highs[i]),
            verdict=verdict,
            p_value=float(p_values[i]),
            holm_verdict=verdict if holm[i] < alpha else "not separable",
            holm_p_value=float(holm[i]),
        )
    return result


def seeds_for_power(
    sigma_d: float, detectable: float = 1.0, *, confidence: float = 0.95, power: float = 0.5
) -> int:
    """Seeds S a benchmark needs so that a true mean difference of `detectable` metric points is
    separable, from a pilot's standard deviation σ_d of the per-seed difference (method − reference).

    The interval's half-width is about t_{(1+confidence)/2, S−1} · σ_d / √S. With the default power
    0.5 the answer is the smallest S (at least 2) whose half-width is at most `detectable`: a
    difference of that size lands outside the interval about half the time. A higher `power` adds
    t_{power, S−1} (the usual sample-size formula), e.g. power 0.8 needs roughly twice the seeds.
    σ_d between seeds ignores test-example noise, which the two-stage bootstrap adds, so read the
    answer as a lower bound and confirm it with the bootstrap on the pilot.
    """
    if not math.isfinite(sigma_d) or sigma_d < 0:
        raise InvalidValueError(f"sigma_d {sigma_d} is not a standard deviation: use a value >= 0")
    if not detectable > 0:
        raise InvalidValueError(f"detectable {detectable} is out of range: use a difference > 0")
    if not 0 < confidence < 1:
        raise InvalidValueError(f"confidence {confidence} is out of range: use a value between 0 and 1")
    if not 0.5 <= power < 1:
        raise InvalidValueError(f"power {power} is out of range: use a value from 0.5 to below 1")
    for count in range(2, MAX_SEEDS + 1):
        dof = count - 1
        factor = scipy_stats.t.ppf((1 + confidence) / 2, dof) + scipy_stats.t.ppf(power, dof)
        if factor * sigma_d / math.sqrt(count) <= detectable:
            return count
    raise InvalidValueError(
        f"sigma_d {sigma_d} would need more than {MAX_SEEDS} seeds to detect {detectable}: "
        "reduce the noise (more test examples, longer runs) or accept a larger detectable difference"
    )
