"""The statistics of ``rarity spaces`` (rarity_score.spaces.agreement).

Each value is checked on brute-force rarities (tests/reference.py, the float64 oracle) against
scipy, and, so that a wrong call of scipy cannot pass, against an independent computation: the
Pearson correlation of ranks made by hand (tie-free data), a pair count for Kendall's tau-b, the
2 x 2 formula for Cohen's kappa, Python sets for the Jaccard indices. A space that is a rotation,
translation and scaling of another (scored through the engine) agrees exactly; an independent one
hardly at all.
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import scipy.stats
from datagen import random_rotation
from reference import reference_evaluation

from rarity_score import evaluate
from rarity_score._errors import MissingDependency
from rarity_score.spaces import agreement
from rarity_score.spaces.agreement import (
    ROW_KEYS,
    agree,
    agreement_rows,
    percentiles,
    rarest_count,
)

NAN = float("nan")


def _two_spaces(seed: int, n_real: int = 300, n_fake: int = 80, dim: int = 4):
    """Brute-force rarities of the same fakes in two related but different spaces (the second
    a nonlinear map of the first), each with samples in and out of its manifold."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    fake = np.vstack(
        [
            real[rng.integers(0, n_real, n_fake // 2)]
            + 0.3 * rng.standard_normal((n_fake // 2, dim)),
            2.0 * rng.standard_normal((n_fake - n_fake // 2, dim)),
        ]
    )

    def warp(x: np.ndarray) -> np.ndarray:
        return np.tanh(x) + 0.3 * x**2

    ra = reference_evaluation(real, fake, 3).rarity
    rb = reference_evaluation(warp(real), warp(fake), 3).rarity
    return ra, rb


def _hand_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of tie-free values, by argsort."""
    ranks = np.empty(x.size)
    ranks[np.argsort(x)] = np.arange(x.size)
    return ranks


def _kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b by counting pairs: (P - Q) / sqrt((n0 - tx) (n0 - ty))."""
    concordant = discordant = tied_x = tied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0:
            tied_x += 1
        if dy == 0:
            tied_y += 1
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    pairs = len(x) * (len(x) - 1) // 2
    return (concordant - discordant) / math.sqrt((pairs - tied_x) * (pairs - tied_y))


def _kappa_2x2(fa: np.ndarray, fb: np.ndarray) -> float:
    n = fa.size
    observed = float((fa == fb).sum()) / n
    chance = (fa.sum() / n) * (fb.sum() / n) + ((~fa).sum() / n) * ((~fb).sum() / n)
    return (observed - chance) / (1 - chance)


def _jaccard_by_sets(ra: np.ndarray, rb: np.ndarray, fraction: float, rarest: bool) -> float | None:
    """The tie-aware rule in plain Python: the rarest set is every sample in both manifolds
    whose rarity reaches the m-th largest (the most common: the m-th smallest)."""
    both = [i for i in range(ra.size) if math.isfinite(ra[i]) and math.isfinite(rb[i])]
    m = math.ceil(round(fraction * len(both), 9))
    if m == 0 or len({ra[i] for i in both}) == 1 or len({rb[i] for i in both}) == 1:
        return None

    def extreme(r: np.ndarray) -> set[int]:
        values = sorted((r[i] for i in both), reverse=rarest)
        bound = values[m - 1]
        return {i for i in both if (r[i] >= bound if rarest else r[i] <= bound)}

    first, second = extreme(ra), extreme(rb)
    return len(first & second) / len(first | second)


# ---------------------------------------------------------------------- against scipy and by hand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlations_on_oracle_rarities(seed):
    ra, rb = _two_spaces(seed)
    both = np.isfinite(ra) & np.isfinite(rb)
    result = agree(ra, rb)
    assert result.n == ra.size and result.n_in_both == int(both.sum()) > 20
    assert 0 < both.mean() < 1  # samples out of the manifold in some space: the mask matters
    x, y = ra[both], rb[both]
    assert result.spearman == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    assert result.kendall == pytest.approx(scipy.stats.kendalltau(x, y)[0], abs=1e-12)
    # Independent of scipy: Pearson of hand-made ranks where no rarity ties (several fakes in
    # one real sphere share its radius, so the oracle's rarities can tie: those are dropped).
    values, counts = np.unique(x, return_counts=True)
    unique_x = np.isin(x, values[counts == 1])
    values, counts = np.unique(y, return_counts=True)
    keep = unique_x & np.isin(y, values[counts == 1])
    assert keep.sum() > 20
    by_hand = np.corrcoef(_hand_ranks(x[keep]), _hand_ranks(y[keep]))[0, 1]
    on_kept = agree(x[keep], y[keep])
    assert on_kept.spearman == pytest.approx(by_hand, abs=1e-12)
    assert on_kept.kendall == pytest.approx(
        _kendall_tau_b(x[keep].tolist(), y[keep].tolist()), abs=1e-12
    )


def test_kendall_is_tau_b_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 25).astype(float)
    y = (x + rng.integers(0, 3, 25)).astype(float)
    result = agree(x, y)
    assert result.kendall == pytest.approx(_kendall_tau_b(x.tolist(), y.tolist()), abs=1e-12)
    assert result.kendall != pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flags_and_kappa_on_oracle_rarities(seed):
    ra, rb = _two_spaces(seed)
    fa, fb = np.isfinite(ra), np.isfinite(rb)
    result = agree(ra, rb)
    assert (result.in_in, result.in_out, result.out_in, result.out_out) == (
        int((fa & fb).sum()),
        int((fa & ~fb).sum()),
        int((~fa & fb).sum()),
        int((~fa & ~fb).sum()),
    )
    assert result.in_out + result.out_in > 0  # the spaces disagree somewhere
    assert result.kappa == pytest.approx(_kappa_2x2(fa, fb), abs=1e-12)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_jaccard_against_python_sets(seed, fraction):
    ra, rb = _two_spaces(seed)
    result = agree(ra, rb, fraction=fraction)
    assert result.jaccard_rarest == _jaccard_by_sets(ra, rb, fraction, rarest=True)
    assert result.jaccard_common == _jaccard_by_sets(ra, rb, fraction, rarest=False)
    if fraction == 1.0:
        assert result.jaccard_rarest == result.jaccard_common == 1.0


def test_jaccard_ties_at_the_boundary_are_all_in():
    # Rarest 10 % of 10 samples is 1 sample; rows 1 and 3 tie for the rarest in a: both in.
    ra = np.array([1.0, 5.0, 2.0, 5.0, 3.0, 0.5, 0.5, 2.0, 1.5, 4.0])
    rb = ra.copy()
    rb[1], rb[3] = 4.9, 5.0  # b's rarest is row 3 alone
    result = agree(ra, rb)
    assert result.jaccard_rarest == 0.5  # {1, 3} and {3}
    # The most common: rows 5 and 6 tie in a and in b: the same two.
    assert result.jaccard_common == 1.0
    rb2 = ra.copy()
    rb2[6] = 0.4  # b's most common is row 6 alone, a's rows 5 and 6
    assert agree(ra, rb2).jaccard_common == 0.5


def test_jaccard_does_not_depend_on_the_order_of_the_rows():
    # The reviewer's case: a constant side. Row order once decided it (0.0 one way, 1.0 the
    # other); now it is undefined, as Spearman is.
    x = np.arange(10, dtype=float)
    ones = np.ones(10)
    assert agree(x, ones).jaccard_rarest is None and agree(x, ones).jaccard_common is None
    assert agree(x[::-1], ones).jaccard_rarest is None
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        ra = rng.integers(0, 5, n).astype(float)  # many ties
        rb = rng.integers(0, 5, n).astype(float)
        ra[rng.random(n) < 0.2] = NAN
        rb[rng.random(n) < 0.2] = NAN
        fraction = float(rng.choice([0.1, 0.25, 0.5]))
        expected = agree(ra, rb, fraction=fraction)
        order = rng.permutation(n)
        shuffled = agree(ra[order], rb[order], fraction=fraction)
        assert (shuffled.jaccard_rarest, shuffled.jaccard_common) == (
            expected.jaccard_rarest,
            expected.jaccard_common,
        )
        assert expected.jaccard_rarest == _jaccard_by_sets(ra, rb, fraction, rarest=True)
        assert expected.jaccard_common == _jaccard_by_sets(ra, rb, fraction, rarest=False)


def test_rarest_count_reads_the_fraction_as_written():
    assert [rarest_count(n) for n in (0, 1, 9, 10, 11, 30, 31, 100)] == [0, 1, 1, 1, 2, 3, 4, 10]
    assert rarest_count(30, 0.1) == 3  # 0.1 * 30 is 3.0000000000000004 in binary floating point
    assert rarest_count(3, 1.0) == 3


# ---------------------------------------------------------------------- undefined values


def test_undefined_values_are_none():
    nothing_in_both = agree([1.0, NAN, 2.0], [NAN, 3.0, NAN])
    assert nothing_in_both.n_in_both == 0
    assert nothing_in_both.spearman is None and nothing_in_both.kendall is None
    assert nothing_in_both.jaccard_rarest is None and nothing_in_both.jaccard_common is None
    assert nothing_in_both.kappa == pytest.approx(_kappa_2x2(*_flags([1, NAN, 2], [NAN, 3, NAN])))

    one = agree([1.0, NAN], [2.0, 3.0])
    assert one.n_in_both == 1 and one.spearman is None and one.kendall is None
    assert one.jaccard_rarest is None and one.jaccard_common is None  # one sample: constant

    constant = agree([1.0, 2.0, 3.0], [4.0, 4.0, 4.0])
    assert constant.spearman is None and constant.kendall is None
    assert constant.jaccard_rarest is None and constant.jaccard_common is None

    all_in = agree([1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
    assert all_in.kappa is None  # both flag arrays constant and equal: chance agreement is 1
    assert all_in.spearman == pytest.approx(-0.5)

    all_out = agree([NAN, NAN], [NAN, NAN])
    assert all_out.kappa is None and all_out.out_out == 2

    opposite = agree([1.0, 2.0], [NAN, NAN])
    assert opposite.kappa == 0.0  # constant but different: no agreement beyond chance

    empty = agree([], [])
    assert empty.n == 0 and empty.kappa is None and empty.spearman is None


def _flags(a, b):
    return np.isfinite(np.asarray(a, float)), np.isfinite(np.asarray(b, float))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="different lengths"):
        agree([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="infinite"):
        agree([1.0, float("inf")], [1.0, 2.0])
    with pytest.raises(ValueError, match="fraction"):
        agree([1.0], [1.0], fraction=0.0)
    with pytest.raises(ValueError, match="spaces"):
        agreement_rows("s", ["A", "B"], np.zeros((3, 3)))


# ---------------------------------------------------------------------- percentiles


def test_percentiles_range_ties_and_out_of_manifold():
    rng = np.random.default_rng(4)
    rarity = rng.integers(0, 6, 40).astype(float)
    rarity[rng.random(40) < 0.3] = NAN
    got = percentiles(rarity)
    inside = np.isfinite(rarity)
    assert np.isnan(got[~inside]).all()
    assert (got[inside] >= 0).all() and (got[inside] <= 100).all()
    values = rarity[inside]
    n_in = values.size
    for i in np.flatnonzero(inside):
        below = int((values < rarity[i]).sum())
        equal = int((values == rarity[i]).sum())
        # average rank (from 0) of a tie group: below + (equal - 1) / 2
        assert got[i] == pytest.approx(100 * (below + (equal - 1) / 2) / (n_in - 1), abs=1e-12)
    # ties share one percentile
    for value in np.unique(values):
        assert len(set(got[rarity == value].tolist())) == 1


def test_percentiles_span_0_to_100_without_ties():
    rarity = np.random.default_rng(7).random(30)
    rarity[::4] = NAN
    got = percentiles(rarity)
    inside = np.isfinite(rarity)
    assert got[inside].min() == 0.0 and got[inside].max() == 100.0
    assert got[np.nanargmax(rarity)] == 100.0 and got[np.nanargmin(rarity)] == 0.0
    order = np.argsort(rarity[inside])
    assert np.all(np.diff(got[inside][order]) > 0)


def test_percentiles_edge_cases_and_columns():
    assert percentiles([NAN, 2.0, NAN]).tolist()[1] == 50.0
    assert np.isnan(percentiles([NAN, NAN])).all()
    assert percentiles([]).shape == (0,)
    two = percentiles(np.array([[1.0, 9.0], [2.0, NAN], [3.0, 1.0]]))
    assert two[:, 0].tolist() == [0.0, 50.0, 100.0]
    assert two[0, 1] == 100.0 and np.isnan(two[1, 1]) and two[2, 1] == 0.0


# ---------------------------------------------------------------------- invariance, independence


def test_rotated_translated_scaled_space_agrees_exactly():
    """The same samples in a space that is a rotation, translation and scaling of the first,
    both scored by the engine: every statistic is exactly 1."""
    rng = np.random.default_rng(5)
    dim = 6
    real = rng.standard_normal((200, dim))
    fake = np.vstack(
        [
            real[rng.integers(0, 200, 60)] + 0.2 * rng.standard_normal((60, dim)),
            2.5 * rng.standard_normal((60, dim)),
        ]
    )
    rotation = random_rotation(dim, rng)
    shift = rng.normal(scale=10.0, size=dim)

    def moved(x: np.ndarray) -> np.ndarray:
        return 3.7 * x @ rotation + shift

    first = evaluate(real, fake, k=3, metrics=["rarity"])
    second = evaluate(moved(real), moved(fake), k=3, metrics=["rarity"])
    # The data have real in and out fractions, and the engine agrees on every decision.
    assert 0.2 < first.in_manifold.mean() < 0.8
    assert np.array_equal(first.in_manifold, second.in_manifold)
    # No two distinct rarities within rounding of each other (else the ranks could swap).
    values = np.unique(first.rarity[first.in_manifold])
    assert np.diff(values).min() > 1e-9 * values.max()
    result = agree(first.rarity, second.rarity)
    assert result.spearman == 1.0
    assert result.kendall == 1.0
    assert result.kappa == 1.0
    assert result.jaccard_rarest == 1.0
    assert result.jaccard_common == 1.0
    assert result.in_out == result.out_in == 0


def test_independent_space_hardly_correlates():
    rng = np.random.default_rng(6)
    dim, n_real, n_fake = 5, 300, 400

    def rarity_in_a_space() -> np.ndarray:
        real = rng.standard_normal((n_real, dim))
        fake = rng.standard_normal((n_fake, dim))
        return evaluate(real, fake, k=5, metrics=["rarity"]).rarity

    ra, rb = rarity_in_a_space(), rarity_in_a_space()
    result = agree(ra, rb)
    assert result.n_in_both > 200
    assert abs(result.spearman) < 0.15
    assert abs(result.kendall) < 0.15
    assert abs(result.kappa) < 0.15


# ---------------------------------------------------------------------- rows, dependencies


def test_agreement_rows_cover_every_pair_in_order():
    ra, rb = _two_spaces(0)
    rarity = np.stack([ra, rb, ra[::-1]], axis=1)
    rows = agreement_rows("set", ["A", "B", "C"], rarity)
    assert [(r["space_a"], r["space_b"]) for r in rows] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert all(list(row) == list(ROW_KEYS) for row in rows)
    assert rows[0]["spearman"] == agree(ra, rb).spearman
    assert rows[1]["kendall"] == agree(ra, ra[::-1]).kendall


def test_missing_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import scipy.stats now fails
    with pytest.raises(MissingDependency, match=r"scipy.*rarity-score\[spaces\]"):
        agreement.percentiles([1.0, 2.0, 3.0])
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    with pytest.raises(MissingDependency, match=r"scikit-learn.*rarity-score\[spaces\]"):
        agreement._kappa(np.array([True, False]), np.array([True, True]))
