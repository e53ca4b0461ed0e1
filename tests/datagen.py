"""Deterministic data sets on which the answer is not trivial.

Every named data set mixes fakes inside and outside the real manifold and carries one hard case
(ties, duplicates, a large offset, k = N - 1, ...). ``check_nontrivial`` asserts that the hard case
is really there, so that a test built on a data set cannot pass vacuously.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from reference import Reference, reference_evaluation

# Fraction of fakes inside the manifold that every (data set, k) must stay within.
IN_FRACTION_RANGE = (0.15, 0.85)


@dataclass(frozen=True)
class Dataset:
    name: str
    real: np.ndarray
    fake: np.ndarray
    ks: tuple[int, ...]
    # Extra conditions the data set exists to exercise, checked against the oracle.
    features: tuple[str, ...] = ()


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def shuffled(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows in random order, so that duplicates do not sit at neighbouring indices."""
    return x[rng.permutation(x.shape[0])]


def copies_of_real(real: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Fakes equal to real samples: one whose sphere takes part in realism (radius <= median,
    so realism is +inf), and one with the largest radius (it does not take part)."""
    median = np.median(radii)
    small = np.flatnonzero((radii <= median) & (radii > 0))[0]
    large = int(np.argmax(radii))
    return real[[small, large]]


def gaussian() -> Dataset:
    """Isotropic Gaussian reals; fakes from the same law, a wider law and a shifted law."""
    rng = np.random.default_rng(1)
    dim = 12
    real = rng.standard_normal((150, dim))
    radii = reference_evaluation(real, real[:5], 3).radii
    twin = rng.standard_normal((1, dim))  # an exact duplicate pair among the fakes
    fake = np.vstack(
        [
            rng.standard_normal((50, dim)),
            1.8 * rng.standard_normal((30, dim)),
            rng.standard_normal((15, dim)) + 2.5,
            copies_of_real(real, radii),
            twin,
            twin,
        ]
    )
    return Dataset("gaussian", real, shuffled(fake, rng), (1, 3, 5), ("realism_inf",))


def embedded() -> Dataset:
    """A 5-d manifold in 256-d: random rotation, ReLU features with a big mean."""
    rng = np.random.default_rng(2)
    dim, latent_dim = 256, 5
    basis = random_rotation(dim, rng)[:latent_dim] * 4.0
    # Most coordinates have a big positive mean; a quarter sit near 0, where the ReLU clips.
    offset = rng.uniform(20.0, 60.0, dim)
    offset[rng.random(dim) < 0.25] = 0.0

    def features(latent: np.ndarray) -> np.ndarray:
        return np.maximum(latent @ basis + offset, 0.0)

    real = features(rng.standard_normal((200, latent_dim)))
    radii = reference_evaluation(real, real[:5], 3).radii
    fake = np.vstack(
        [
            features(rng.standard_normal((80, latent_dim))),
            features(2.2 * rng.standard_normal((70, latent_dim))),
            copies_of_real(real, radii),
        ]
    )
    return Dataset("embedded", real, shuffled(fake, rng), (3, 10), ("realism_inf",))


def duplicates() -> Dataset:
    """Exact duplicates in the real set (radius-0 spheres for small k) and in the fake set, and
    fakes equal to duplicated reals (equal radii: the sphere chosen is the smallest index)."""
    rng = np.random.default_rng(3)
    dim = 6
    base = rng.standard_normal((60, dim))
    triples = np.repeat(base[:5], 2, axis=0)  # rows 0-4 appear 3 times in all
    doubles = base[5:12]  # rows 5-11 appear 2 times in all
    real = shuffled(np.vstack([base, triples, doubles]), rng)
    fake_twins = np.repeat(rng.standard_normal((4, dim)), 2, axis=0)
    fake = np.vstack(
        [
            base[:5],  # equal to a triplicated real
            base[5:12],  # equal to a duplicated real
            base[20:24],  # equal to a single real
            fake_twins,
            base[30:50] + 0.15 * rng.standard_normal((20, dim)),
            1.7 * rng.standard_normal((25, dim)),
        ]
    )
    return Dataset(
        "duplicates",
        real,
        shuffled(fake, rng),
        (1, 2, 3, 4),
        ("zero_radius", "sphere_tie"),
    )


def integer_ties() -> Dataset:
    """Small-integer features: squared distances are exact integers in float64, so many distances
    tie exactly, and many lie exactly on a sphere's surface (outside, by the strict rule)."""
    rng = np.random.default_rng(4)
    dim = 5
    real = rng.integers(0, 4, size=(120, dim)).astype(np.float64)
    fake = np.vstack(
        [
            rng.integers(0, 4, size=(40, dim)),
            rng.integers(0, 6, size=(50, dim)),
            real[:6],  # equal to real samples
        ]
    ).astype(np.float64)
    return Dataset(
        "integer_ties",
        real,
        shuffled(fake, rng),
        (1, 3, 7),
        ("boundary_tie", "sphere_tie"),
    )


def offset_tiny() -> Dataset:
    """Common offset 1e4, spread 1e-3: the |a|^2 - 2ab + |b|^2 expansion cancels catastrophically,
    and float32 cannot even represent the points apart."""
    rng = np.random.default_rng(5)
    dim = 24
    offset = 1e4 + rng.uniform(0.0, 1.0, dim)
    real = offset + 1e-3 * rng.standard_normal((100, dim))
    fake = offset + 1e-3 * np.vstack(
        [rng.standard_normal((40, dim)), 1.8 * rng.standard_normal((40, dim))]
    )
    fake = np.vstack([fake, real[:2]])
    return Dataset("offset_tiny", real, shuffled(fake, rng), (3,))


def k_max() -> Dataset:
    """Tiny real set used with k = N - 1: every sphere reaches the farthest other real."""
    rng = np.random.default_rng(6)
    dim = 3
    real = rng.standard_normal((12, dim))
    fake = np.vstack([0.6 * rng.standard_normal((8, dim)), 5.0 * rng.standard_normal((16, dim))])
    return Dataset("k_max", real, shuffled(fake, rng), (11, 1, 6))


def median_zero() -> Dataset:
    """Most real samples are duplicated, so with k = 1 the median radius is 0: no sphere takes part
    in realism and realism is 0 everywhere, while the singletons still make a manifold."""
    rng = np.random.default_rng(7)
    dim = 4
    singles = 3.0 * rng.standard_normal((20, dim))
    pairs = rng.standard_normal((22, dim))
    real = shuffled(np.vstack([singles, pairs, pairs]), rng)
    fake = np.vstack(
        [
            singles[:12] + 0.05 * rng.standard_normal((12, dim)),
            pairs[:8],  # on a radius-0 sphere: inside only if another sphere covers it
            6.0 * rng.standard_normal((15, dim)),
        ]
    )
    return Dataset("median_zero", real, shuffled(fake, rng), (1,), ("realism_zero",))


BUILDERS: dict[str, Callable[[], Dataset]] = {
    "gaussian": gaussian,
    "embedded": embedded,
    "duplicates": duplicates,
    "integer_ties": integer_ties,
    "offset_tiny": offset_tiny,
    "k_max": k_max,
    "median_zero": median_zero,
}


@cache
def dataset(name: str) -> Dataset:
    return BUILDERS[name]()


@cache
def reference(name: str, k: int) -> Reference:
    ds = dataset(name)
    return reference_evaluation(ds.real, ds.fake, k)


def dataset_cases() -> list[tuple[str, int]]:
    """Every (data set, k) pair the reference tests run on."""
    return [(name, k) for name in BUILDERS for k in dataset(name).ks]


def has_sphere_tie(ref: Reference) -> bool:
    """Some fake lies in two or more spheres that share the smallest radius containing it."""
    for j in np.flatnonzero(ref.in_manifold):
        containing = ref.radii[ref.inside[:, j]]
        if np.count_nonzero(containing == containing.min()) >= 2:
            return True
    return False


def check_nontrivial(ds: Dataset) -> None:
    """Assert that each (data set, k) has fakes in and out, and that its hard case is present."""
    refs = [reference(ds.name, k) for k in ds.ks]
    lo, hi = IN_FRACTION_RANGE
    for ref in refs:
        assert lo <= ref.precision <= hi, (ds.name, ref.k, ref.precision)
    found = {
        "realism_inf": any(np.isinf(ref.realism).any() for ref in refs),
        "realism_zero": any((ref.realism == 0).all() for ref in refs),
        "zero_radius": any((ref.radii == 0).any() for ref in refs),
        "sphere_tie": any(has_sphere_tie(ref) for ref in refs),
        "boundary_tie": any((ref.distances == ref.radii[:, None]).any() for ref in refs),
    }
    for feature in ds.features:
        assert found[feature], f"{ds.name}: no {feature}"


def make_problem(
    kind: str, n_real: int, n_fake: int, dim: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A small random problem for property tests.

    ``continuous``: Gaussian reals, fakes near reals, from a wider law, and far away; no ties.
    ``integer``: small integers (exact ties everywhere), fakes include copies of reals.
    """
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        real = rng.standard_normal((n_real, dim))
        near = real[rng.integers(0, n_real, n_fake)] + 0.3 * rng.standard_normal((n_fake, dim))
        wide = 2.5 * rng.standard_normal((n_fake, dim))
        fake = np.where(rng.random((n_fake, 1)) < 0.5, near, wide)
        return real, fake
    if kind == "integer":
        real = rng.integers(0, 3, size=(n_real, dim)).astype(np.float64)
        fake = rng.integers(-1, 4, size=(n_fake, dim)).astype(np.float64)
        copies = rng.random(n_fake) < 0.3
        fake[copies] = real[rng.integers(0, n_real, int(copies.sum()))]
        return real, fake
    raise ValueError(kind)
