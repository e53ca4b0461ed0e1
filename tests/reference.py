"""Brute-force float64 oracle for every metric of SPEC.md.

Written for clarity, not speed: full distance matrices, computed from direct coordinate differences
in float64 (never the ``|a|^2 + |b|^2 - 2ab`` expansion, which loses everything when the data sit
far from the origin). It deliberately does not import ``rarity_score``, so that it cannot share a
bug with the engine it checks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reference:
    """The exact answer, field for field as in ``rarity_score.results.Evaluation``."""

    k: int
    n_real: int
    n_fake: int
    dim: int
    radii: np.ndarray  # (N,) k-NN radius of each real sample
    fake_radii: np.ndarray | None  # (M,) k-NN radius of each fake sample within G (for recall)
    distances: np.ndarray  # (N, M) d(r, g)
    inside: np.ndarray  # (N, M) bool: g lies in the open sphere of r
    rarity: np.ndarray
    in_manifold: np.ndarray
    sphere_index: np.ndarray
    sphere_count: np.ndarray
    nearest_real_index: np.ndarray
    nearest_real_distance: np.ndarray
    realism: np.ndarray
    precision: float
    recall: float
    density: float
    coverage: float


def to_float64(x: np.ndarray) -> np.ndarray:
    """Upcast to float64; every float16/32 value is exactly representable, so nothing changes."""
    return np.asarray(x, dtype=np.float64)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """d(a_i, b_j) for all pairs, as sqrt(sum((a_i - b_j)^2)) in float64.

    One row at a time only to bound memory; each entry is the same direct-difference expression.
    """
    a, b = to_float64(a), to_float64(b)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float64)
    for i in range(a.shape[0]):
        out[i] = np.sqrt(((a[i][None, :] - b) ** 2).sum(axis=-1))
    return out


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest *other* row.

    The row itself is excluded by index (its diagonal entry is set to +inf); an exact duplicate at
    another index still counts, so duplicates can give a radius of exactly 0.
    """
    d = pairwise_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def smallest_containing_sphere(radii: np.ndarray, inside_column: np.ndarray) -> int:
    """Index of the smallest-radius sphere containing the sample; ties go to the smallest index."""
    containing = np.flatnonzero(inside_column)  # ascending indices
    if containing.size == 0:
        return -1
    # np.argmin returns the first minimum, i.e. the smallest real index among equal radii.
    return int(containing[np.argmin(radii[containing])])


def realism_scores(radii: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """max over real spheres with 0 < radius <= median radius of radius / d(r, g).

    Spheres of radius 0 are empty and take no part. A participating sphere whose centre coincides
    with g gives +inf. With no participating sphere the score is 0.
    """
    median = np.median(radii)
    participating = (radii <= median) & (radii > 0)
    n_fake = distances.shape[1]
    out = np.zeros(n_fake, dtype=np.float64)
    rad = radii[participating]
    dist = distances[participating]
    for j in range(n_fake):
        if rad.size == 0:
            out[j] = 0.0
        elif np.any(dist[:, j] == 0):
            out[j] = np.inf
        else:
            out[j] = np.max(rad / dist[:, j])
    return out


def reference_evaluation(real: np.ndarray, fake: np.ndarray, k: int) -> Reference:
    """Every metric of SPEC.md, straight from its definition."""
    real, fake = to_float64(real), to_float64(fake)
    n_real, dim = real.shape
    n_fake = fake.shape[0]
    if not 1 <= k <= n_real - 1:
        raise ValueError(f"oracle needs 1 <= k <= N - 1, got k={k}, N={n_real}")

    radii = knn_radii(real, k)
    distances = pairwise_distances(real, fake)
    inside = distances < radii[:, None]  # strict: a sample on the sphere's surface is outside

    sphere_count = inside.sum(axis=0).astype(np.int64)
    in_manifold = sphere_count > 0
    sphere_index = np.array(
        [smallest_containing_sphere(radii, inside[:, j]) for j in range(n_fake)], dtype=np.int64
    )
    rarity = np.full(n_fake, np.nan)
    rarity[in_manifold] = radii[sphere_index[in_manifold]]

    # np.argmin picks the first minimum: ties go to the smallest real index.
    nearest_real_index = distances.argmin(axis=0).astype(np.int64)
    nearest_real_distance = distances.min(axis=0)

    if n_fake - 1 < k:
        warnings.warn("oracle: recall undefined for M - 1 < k", RuntimeWarning, stacklevel=2)
        fake_radii = None
        recall = float("nan")
    else:
        fake_radii = knn_radii(fake, k)
        recall = float((distances < fake_radii[None, :]).any(axis=1).mean())

    return Reference(
        k=k,
        n_real=n_real,
        n_fake=n_fake,
        dim=dim,
        radii=radii,
        fake_radii=fake_radii,
        distances=distances,
        inside=inside,
        rarity=rarity,
        in_manifold=in_manifold,
        sphere_index=sphere_index,
        sphere_count=sphere_count,
        nearest_real_index=nearest_real_index,
        nearest_real_distance=nearest_real_distance,
        realism=realism_scores(radii, distances),
        precision=float(in_manifold.mean()),
        recall=recall,
        density=float(sphere_count.sum() / (k * n_fake)),
        coverage=float((distances.min(axis=1) < radii).mean()),
    )


@dataclass(frozen=True)
class AuthenticityReference:
    """Authenticity (Alaa et al. 2022) straight from its definition, per generated sample."""

    nearest_real_index: np.ndarray  # r*: the nearest real sample, ties to the smallest index
    to_real: np.ndarray  # d(g, r*)
    real_nearest: np.ndarray  # d(r*, NN_R(r*)), the nearest *other* real sample of r*
    authentic: np.ndarray
    ratio: np.ndarray
    authenticity: float


def real_nearest_other(real: np.ndarray) -> np.ndarray:
    """Each real sample's distance to its nearest other real sample (self excluded by index)."""
    return knn_radii(real, 1)


def authenticity_reference(real: np.ndarray, fake: np.ndarray) -> AuthenticityReference:
    """g is unauthentic when d(g, r*) < d(r*, NN_R(r*)); ratio = d(g, r*) / d(r*, NN_R(r*)).

    The package's choices for the zeros: g at distance 0 from r* is an exact copy, unauthentic
    with ratio 0 even when r* has a duplicate (0 / 0); a zero denominator otherwise gives +inf
    (and g is authentic: d(g, r*) < 0 never holds).
    """
    distances = pairwise_distances(real, fake)  # (N, M)
    nearest = distances.argmin(axis=0).astype(np.int64)  # first minimum: smallest index
    to_real = distances[nearest, np.arange(distances.shape[1])]
    own = real_nearest_other(real)[nearest]
    authentic = np.empty(len(nearest), dtype=bool)
    ratio = np.empty(len(nearest))
    for j in range(len(nearest)):
        if to_real[j] == 0.0:
            authentic[j], ratio[j] = False, 0.0
        elif own[j] == 0.0:
            authentic[j], ratio[j] = True, np.inf
        else:
            authentic[j] = not (to_real[j] < own[j])
            ratio[j] = to_real[j] / own[j]
    return AuthenticityReference(
        nearest_real_index=nearest,
        to_real=to_real,
        real_nearest=own,
        authentic=authentic,
        ratio=ratio,
        authenticity=float(authentic.mean()),
    )
