"""Every Evaluation field against the brute-force float64 oracle, on the hard data sets of
datagen.py, for several k, tile sizes and backends."""

from __future__ import annotations

import numpy as np
import pytest
from checks import (
    assert_close,
    assert_exact,
    assert_matches_reference,
    assert_scalar_close,
    engine_with,
)
from datagen import BUILDERS, check_nontrivial, dataset, dataset_cases, reference
from reference import reference_evaluation

from rarity_score import RealManifold, evaluate, rarity_score

CASES = [pytest.param(name, k, id=f"{name}-k{k}") for name, k in dataset_cases()]

# 7 does not divide any set size (ragged edge tiles); 64 gives a few tiles; None is the default.
TILE_SIZES = [7, 64, None]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_dataset_is_nontrivial(name):
    # Guards every test below against passing vacuously.
    check_nontrivial(dataset(name))


@pytest.mark.parametrize("tile_size", TILE_SIZES, ids=lambda t: f"tile{t}")
@pytest.mark.parametrize(("name", "k"), CASES)
def test_evaluate_matches_reference(name, k, tile_size, engine_options):
    ds = dataset(name)
    ev = evaluate(ds.real, ds.fake, k, engine=engine_with(engine_options, tile_size=tile_size))
    assert_matches_reference(ev, reference(name, k))


@pytest.mark.parametrize(("name", "k"), CASES)
def test_manifold_radii_match_reference(name, k, engine_options):
    ds = dataset(name)
    manifold = RealManifold(ds.real, k, engine=engine_with(engine_options, tile_size=7))
    assert (manifold.k, manifold.n_real, manifold.dim) == (k, *ds.real.shape)
    # atol 0: duplicates must give radius exactly 0, not a rounding residue.
    assert_close("radii", manifold.radii, reference(name, k).radii)


@pytest.mark.parametrize(("name", "k"), CASES)
def test_rarity_score_matches_reference(name, k, engine_options):
    ds = dataset(name)
    scores = rarity_score(ds.real, ds.fake, k, engine=engine_with(engine_options))
    assert_close("rarity", scores, reference(name, k).rarity)


def test_small_memory_budget_matches_reference(engine_options):
    # The smallest budget the engine accepts (1 MiB) is below this problem's size, so the engine
    # splits the sweep into tiles of its own choosing.
    ds = dataset("embedded")
    ev = evaluate(ds.real, ds.fake, 3, engine=engine_with(engine_options, memory_budget=2**20))
    assert_matches_reference(ev, reference("embedded", 3))


def test_tile_size_one_matches_reference(engine_options):
    # 1x1 tiles: every sample is its own block. A slice keeps the ties and keeps the test fast.
    ds = dataset("integer_ties")
    real, fake = ds.real[:40], ds.fake[:30]
    ev = evaluate(real, fake, 3, engine=engine_with(engine_options, tile_size=1))
    assert_matches_reference(ev, reference_evaluation(real, fake, 3))


def test_recall_is_nan_with_warning_when_fake_set_too_small(engine_options):
    # Recall needs the fakes' own k-NN radii, so M - 1 >= k; with M = 3 and k = 3 it is undefined.
    ds = dataset("gaussian")
    fake = ds.fake[:3]
    with pytest.warns(Warning, match="(?i)recall"):
        ev = evaluate(ds.real, fake, 3, engine=engine_with(engine_options))
    with pytest.warns(RuntimeWarning):
        ref = reference_evaluation(ds.real, fake, 3)
    assert np.isnan(ev.recall)
    assert_matches_reference(ev, ref)


def test_single_fake_sample(engine_options):
    ds = dataset("gaussian")
    with pytest.warns(Warning, match="(?i)recall"):
        ev = evaluate(ds.real, ds.fake[:1], 3, engine=engine_with(engine_options))
    with pytest.warns(RuntimeWarning):
        ref = reference_evaluation(ds.real, ds.fake[:1], 3)
    assert_matches_reference(ev, ref)


def test_fake_equal_to_real_is_inside_with_infinite_realism(engine_options):
    # d(r, g) = 0 < rad(r): inside; r takes part in realism (radius <= median) so realism is +inf.
    ds = dataset("gaussian")
    ref = reference("gaussian", 3)
    small = int(np.flatnonzero((ref.radii > 0) & (ref.radii <= np.median(ref.radii)))[0])
    ev = evaluate(
        ds.real,
        ds.real[[small]],
        3,
        metrics=("realism", "nearest"),
        engine=engine_with(engine_options),
    )
    assert ev.in_manifold[0]
    assert ev.rarity[0] <= ref.radii[small]
    assert ev.realism[0] == np.inf
    assert_exact("nearest_real_index", ev.nearest_real_index, np.array([small], dtype=np.int64))
    assert ev.nearest_real_distance[0] == 0.0


def test_fake_equal_to_duplicated_real_picks_smallest_index(engine_options):
    # Every copy of the real contains the fake at distance 0 with the same radius: the tie in
    # radius goes to the smallest real index, and so does the tie in nearest distance.
    ds = dataset("duplicates")
    _, first, counts = np.unique(ds.real, axis=0, return_index=True, return_counts=True)
    dup_rows = first[counts >= 2]
    fake = ds.real[dup_rows]
    ref = reference_evaluation(ds.real, fake, 3)
    ev = evaluate(ds.real, fake, 3, engine=engine_with(engine_options))
    assert_matches_reference(ev, ref)
    tied = 0
    for j, row in enumerate(dup_rows):
        copies = np.flatnonzero((ds.real == ds.real[row]).all(axis=1))
        assert ev.nearest_real_index[j] == copies.min()
        if ref.in_manifold[j] and ref.rarity[j] == ref.radii[copies[0]]:
            assert ev.sphere_index[j] == copies.min()
            tied += 1
    assert tied > 0  # the tie between copies really decided some samples


@pytest.mark.parametrize("k", [1, 3])
def test_scalar_metrics_are_floats(k, engine_options):
    ds = dataset("gaussian")
    ev = evaluate(ds.real, ds.fake, k, engine=engine_with(engine_options))
    ref = reference("gaussian", k)
    for name in ("precision", "recall", "density", "coverage"):
        assert_scalar_close(name, getattr(ev, name), getattr(ref, name))
