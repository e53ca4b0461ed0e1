"""Hypothesis property tests: invariances of the metrics, and independence of results from tile
size, backend and input dtype.

Transformations that are exact in float64 (permutations, powers of two, integer shifts of integer
data, signed coordinate permutations) must leave every decision identical. Inexact ones (rotations,
arbitrary shifts and scales) may legitimately flip a decision that sits within rounding of a
sphere's surface, so there the engine is held to the oracle run on the transformed data, and scores
are compared with the untransformed ones only where the oracle's decisions did not move.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pytest
from checks import RTOL, assert_close, assert_exact, assert_matches_reference, engine_with
from datagen import make_problem, random_rotation
from hypothesis import given
from hypothesis import strategies as st
from reference import Reference, reference_evaluation

from rarity_score import RealManifold, evaluate

BACKENDS = ["numpy", "torch"] if importlib.util.find_spec("torch") else ["numpy"]
TILES = st.none() | st.integers(1, 40)


@dataclass(frozen=True)
class Problem:
    kind: str
    real: np.ndarray
    fake: np.ndarray
    k: int


@st.composite
def problems(draw, kinds=("continuous", "integer")) -> Problem:
    kind = draw(st.sampled_from(kinds))
    k = draw(st.integers(1, 4))
    n_real = draw(st.integers(k + 1, 30))
    n_fake = draw(st.integers(k + 1, 25))  # M - 1 >= k: recall is defined
    dim = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    real, fake = make_problem(kind, n_real, n_fake, dim, seed)
    return Problem(kind, real, fake, k)


def run(real, fake, k, backend="numpy", tile_size=None, metrics=None):
    return evaluate(
        real, fake, k, engine=engine_with(backend=backend, tile_size=tile_size), metrics=metrics
    )


def stable(ref_a: Reference, ref_b: Reference) -> np.ndarray:
    """Fake samples whose decisions (membership, sphere, nearest real) are the same in both."""
    return (
        (ref_a.in_manifold == ref_b.in_manifold)
        & (ref_a.sphere_index == ref_b.sphere_index)
        & (ref_a.nearest_real_index == ref_b.nearest_real_index)
    )


def assert_scaled(ev, base, c: float, mask: np.ndarray | None = None) -> None:
    """ev equals base with lengths multiplied by c, on the samples in mask (default: all)."""
    mask = np.ones(ev.n_fake, dtype=bool) if mask is None else mask
    for name in ("in_manifold", "sphere_index", "sphere_count", "nearest_real_index"):
        assert_exact(name, getattr(ev, name)[mask], getattr(base, name)[mask])
    assert_close("rarity", ev.rarity[mask], c * base.rarity[mask])
    assert_close(
        "nearest_real_distance",
        ev.nearest_real_distance[mask],
        c * base.nearest_real_distance[mask],
    )
    # realism is a ratio of lengths; rounding of the transformed data may move it by ~1e-15.
    assert_close("realism", ev.realism[mask], base.realism[mask])


def assert_same_scalars(ev, base) -> None:
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ev, name) == pytest.approx(getattr(base, name), rel=RTOL), name


@given(problem=problems(), tile_size=TILES, backend=st.sampled_from(BACKENDS))
def test_matches_oracle_for_any_tile_and_backend(problem, tile_size, backend):
    ev = run(problem.real, problem.fake, problem.k, backend, tile_size)
    assert_matches_reference(ev, reference_evaluation(problem.real, problem.fake, problem.k))


@given(
    problem=problems(),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    backend=st.sampled_from(BACKENDS),
    tile_size=TILES,
)
def test_input_dtype_is_used_exactly(problem, dtype, backend, tile_size):
    # float16/32 inputs are scored as their exact values: the oracle sees the same values upcast.
    real, fake = problem.real.astype(dtype), problem.fake.astype(dtype)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        real, fake = torch.from_numpy(real), torch.from_numpy(fake)
    ev = run(real, fake, problem.k, backend, tile_size)
    ref = reference_evaluation(problem.real.astype(dtype), problem.fake.astype(dtype), problem.k)
    assert_matches_reference(ev, ref)


@given(problem=problems(), data=st.data())
def test_permutation_permutes_outputs(problem, data):
    n_real, n_fake = len(problem.real), len(problem.fake)
    p_real = np.array(data.draw(st.permutations(range(n_real))), dtype=np.int64)
    p_fake = np.array(data.draw(st.permutations(range(n_fake))), dtype=np.int64)
    real, fake = problem.real[p_real], problem.fake[p_fake]
    base = run(problem.real, problem.fake, problem.k)
    ev = run(real, fake, problem.k)
    for name in ("in_manifold", "sphere_count"):
        assert_exact(name, getattr(ev, name), getattr(base, name)[p_fake])
    for name in ("rarity", "nearest_real_distance", "realism"):
        assert_close(name, getattr(ev, name), getattr(base, name)[p_fake])
    assert_same_scalars(ev, base)
    # Equal radii are common even in continuous data (mutual k-th neighbours share their radius),
    # and which tied sphere is reported depends on the order (smallest index wins): the indices
    # are checked against the oracle on the permuted data.
    assert_matches_reference(ev, reference_evaluation(real, fake, problem.k))
    manifold = RealManifold(real, problem.k)
    assert_close("radii", manifold.radii, RealManifold(problem.real, problem.k).radii[p_real])


@given(problem=problems(kinds=("continuous",)), data=st.data())
def test_permutation_maps_nearest_index(problem, data):
    # Distinct continuous points have no tied distances, so the nearest real follows its row.
    n_real = len(problem.real)
    p_real = np.array(data.draw(st.permutations(range(n_real))), dtype=np.int64)
    base = run(problem.real, problem.fake, problem.k, metrics=("nearest",))
    ev = run(problem.real[p_real], problem.fake, problem.k, metrics=("nearest",))
    new_position = np.argsort(p_real)  # input real row i is row new_position[i] after permuting
    assert_exact("nearest_real_index", ev.nearest_real_index, new_position[base.nearest_real_index])


@given(problem=problems(kinds=("integer",)), data=st.data())
def test_exact_isometries_of_integer_data(problem, data):
    # Integer shifts and signed coordinate permutations keep all squared distances the same exact
    # integers, so nothing at all may change, ties included.
    dim = problem.real.shape[1]
    shift = np.array(data.draw(st.lists(st.integers(-1000, 1000), min_size=dim, max_size=dim)))
    axes = np.array(data.draw(st.permutations(range(dim))))
    signs = np.array(data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=dim, max_size=dim)))

    def move(x: np.ndarray) -> np.ndarray:
        return x[:, axes] * signs + shift

    base = run(problem.real, problem.fake, problem.k)
    ev = run(move(problem.real), move(problem.fake), problem.k)
    assert_scaled(ev, base, 1.0)
    assert_same_scalars(ev, base)


@given(problem=problems(kinds=("continuous",)), seed=st.integers(0, 2**32 - 1))
def test_rotation_and_translation(problem, seed):
    rng = np.random.default_rng(seed)
    dim = problem.real.shape[1]
    rotation = random_rotation(dim, rng)
    shift = rng.uniform(-100.0, 100.0, dim)
    real, fake = problem.real @ rotation + shift, problem.fake @ rotation + shift
    ev = run(real, fake, problem.k)
    ref = reference_evaluation(real, fake, problem.k)
    assert_matches_reference(ev, ref)
    base = run(problem.real, problem.fake, problem.k)
    mask = stable(ref, reference_evaluation(problem.real, problem.fake, problem.k))
    assert_scaled(ev, base, 1.0, mask)


@given(problem=problems(), exponent=st.integers(-8, 8), backend=st.sampled_from(BACKENDS))
def test_power_of_two_scaling(problem, exponent, backend):
    # Multiplying by 2^e is exact: decisions are identical and lengths scale by exactly 2^e.
    c = 2.0**exponent
    base = run(problem.real, problem.fake, problem.k, backend)
    ev = run(c * problem.real, c * problem.fake, problem.k, backend)
    assert_scaled(ev, base, c)
    assert_same_scalars(ev, base)
    radii = RealManifold(c * problem.real, problem.k, engine=engine_with(backend=backend)).radii
    assert_close(
        "radii",
        radii,
        c * RealManifold(problem.real, problem.k, engine=engine_with(backend=backend)).radii,
    )


@given(
    problem=problems(kinds=("continuous",)),
    c=st.floats(0.01, 100.0).filter(lambda c: np.log2(c) % 1 != 0),
)
def test_general_scaling(problem, c):
    real, fake = c * problem.real, c * problem.fake
    ev = run(real, fake, problem.k)
    ref = reference_evaluation(real, fake, problem.k)
    assert_matches_reference(ev, ref)
    base = run(problem.real, problem.fake, problem.k)
    mask = stable(ref, reference_evaluation(problem.real, problem.fake, problem.k))
    assert_scaled(ev, base, c, mask)
