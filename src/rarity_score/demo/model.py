"""The demo's small generative model: a Gaussian mixture in a PCA space of logit pixels.

PCA of the real images (``n_components`` directions), then per digit class a few Gaussians in the
PCA coordinates (k-means clusters): ``y = mu_m + L_m z`` with ``z ~ N(0, I)`` and ``L_m L_m^T``
the component covariance. ``z`` is the latent vector; the truncation trick of GANs scales it
toward its mean, ``z -> psi z``, so psi = 0 gives the component mean and psi = 1 the fitted
distribution. Every level uses the same latent vectors and components (one seed), so the levels
differ in psi only. The image is ``mean + U y`` through a sigmoid, rounded to 0..255.

Pure: arrays in, arrays out, deterministic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rarity_score._errors import require

__all__ = [
    "LOGIT_MARGIN",
    "DigitModel",
    "fit_digit_model",
    "from_logits",
    "kmeans",
    "sample_digits",
    "to_logits",
    "truncate",
]

#: The logit transform's margin: pixel values v in 0..1 are modelled as logit(a + (1 - 2a) v).
LOGIT_MARGIN = 0.05


@dataclass(frozen=True)
class DigitModel:
    """A Gaussian mixture in a PCA space of logit pixels (see the module documentation).

    Attributes:
        mean: (P,) mean of the logit images, flattened.
        components: (C, P) orthonormal PCA directions.
        weights: (M,) the mixture weights (the share of training images of each component).
        labels: (M,) the digit class of each component.
        means: (M, C) component means in PCA coordinates.
        factors: (M, C, C) lower-triangular ``L_m`` with ``L_m L_m^T`` the component covariance.
        temperature: of the decoder's sigmoid (below 1: sharper strokes).
        side: image side in pixels.
    """

    mean: np.ndarray
    components: np.ndarray
    weights: np.ndarray
    labels: np.ndarray
    means: np.ndarray
    factors: np.ndarray
    temperature: float
    side: int

    @property
    def n_components(self) -> int:
        """Dimension of the latent vector (the number of PCA directions)."""
        return int(self.components.shape[0])

    def decode(self, coords: np.ndarray) -> np.ndarray:
        """PCA coordinates (n, C) -> uint8 images (n, side, side)."""
        logits = self.mean + np.asarray(coords, dtype=np.float64) @ self.components
        return from_logits(logits, self.temperature).reshape(-1, self.side, self.side)


def to_logits(images: np.ndarray) -> np.ndarray:
    """0..255 pixels -> ``logit(a + (1 - 2a) v / 255)`` (``a`` = :data:`LOGIT_MARGIN`), the
    transform normalising flows apply to image pixels; flattened to (n, P).

    >>> to_logits(np.array([[[0, 255]]])).round(3).tolist()
    [[-2.944, 2.944]]
    """
    values = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    p = LOGIT_MARGIN + (1 - 2 * LOGIT_MARGIN) * values
    return np.asarray(np.log(p / (1 - p)))


def from_logits(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Inverse of :func:`to_logits` with a sigmoid of ``temperature``, rounded to uint8.

    >>> from_logits(np.array([[-2.944, 0.0, 2.944]])).tolist()
    [[0, 128, 255]]
    """
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))
    values = (p - LOGIT_MARGIN) / (1 - 2 * LOGIT_MARGIN)
    return np.asarray(np.clip(np.rint(255.0 * values), 0, 255).astype(np.uint8))


def kmeans(points: np.ndarray, n_clusters: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Cluster labels (n,) from Lloyd's k-means (SciPy's ``kmeans2``), started from
    ``n_clusters`` distinct points drawn with ``seed``; an emptied cluster keeps its centre.
    Deterministic.

    >>> kmeans(np.array([[0.0], [0.1], [5.0], [5.1]]), 2).tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    True
    """
    vq = require(
        "scipy.cluster.vq", what="the demo's generative model", package="scipy", extra="demo"
    )
    points = np.asarray(points, dtype=np.float64)
    if not 1 <= n_clusters <= len(points):
        raise ValueError(f"n_clusters must be in 1..{len(points)}, got {n_clusters}")
    # The start is ours (sorted draws of one seeded generator), not kmeans2's own "points"
    # start: the same seed then gives the same clusters whatever SciPy's sampling does.
    rng = np.random.default_rng(seed)
    start = points[np.sort(rng.choice(len(points), size=n_clusters, replace=False))]
    with warnings.catch_warnings():
        # kmeans2 warns when a cluster empties and keeps its centre, which is what is wanted:
        # fit_digit_model leaves such clusters out.
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        _, labels = vq.kmeans2(points, start, iter=iterations, minit="matrix")
    return np.asarray(labels, dtype=np.int64)


def fit_digit_model(
    images: np.ndarray,
    labels: np.ndarray,
    n_components: int = 60,
    cluster_size: int = 20,
    temperature: float = 0.5,
    seed: int = 0,
) -> DigitModel:
    """Fit :class:`DigitModel` to square uint8-range images (n, side, side) with their classes.

    The images go to logit space (:func:`to_logits`) and onto their first ``n_components``
    principal directions; each class is split by :func:`kmeans` into clusters of about
    ``cluster_size`` images, and each cluster gets a Gaussian (its mean and covariance, with a
    small ridge so the factor exists when a cluster has fewer images than directions).
    Deterministic: the PCA comes from an eigendecomposition, each direction's sign fixed so
    that its largest-magnitude entry is positive; k-means starts from ``seed``.

    >>> rng = np.random.default_rng(0)
    >>> model = fit_digit_model(rng.uniform(0, 255, (60, 6, 6)), np.arange(60) % 2,
    ...                         n_components=4, cluster_size=10)
    >>> model.components.shape, model.factors.shape, model.labels.tolist()
    ((4, 36), (6, 4, 4), [0, 0, 0, 1, 1, 1])
    """
    array = np.asarray(images, dtype=np.float64)
    if array.ndim != 3 or array.shape[1] != array.shape[2]:
        raise ValueError(f"expected square images (n, side, side), got shape {array.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(array),):
        raise ValueError(f"expected one label per image, got {labels.shape} for {len(array)}")
    logits = to_logits(array)
    if not 1 <= n_components <= logits.shape[1]:
        raise ValueError(f"n_components must be in 1..{logits.shape[1]}, got {n_components}")
    if cluster_size < 2:
        raise ValueError(f"cluster_size must be at least 2, got {cluster_size}")
    mean = logits.mean(axis=0)
    centred = logits - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(logits) - 1, 1))
    components = vectors[:, np.argsort(values)[::-1][:n_components]].T
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    coords = centred @ components.T
    ridge = 1e-3 * float(values.max()) / n_components * np.eye(n_components)

    weights, classes, means, factors = [], [], [], []
    for c in np.unique(labels):
        members = coords[labels == c]
        if len(members) < 2:
            raise ValueError(f"class {c} has {len(members)} image(s); each class needs 2 or more")
        n_clusters = max(1, len(members) // cluster_size)
        assignment = kmeans(members, n_clusters, seed=seed)
        for j in range(n_clusters):
            cluster = members[assignment == j]
            if len(cluster) < 2:
                continue
            covariance = np.cov(cluster, rowvar=False).reshape(n_components, n_components)
            factors.append(np.linalg.cholesky(covariance + ridge))
            means.append(cluster.mean(axis=0))
            weights.append(len(cluster))
            classes.append(c)
    total = float(sum(weights))
    return DigitModel(
        mean=mean,
        components=components,
        weights=np.array(weights, dtype=np.float64) / total,
        labels=np.array(classes),
        means=np.array(means),
        factors=np.array(factors),
        temperature=float(temperature),
        side=int(array.shape[1]),
    )


def truncate(latent: np.ndarray, psi: float, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """The truncation trick: move latent vectors toward their mean, ``mean + psi (z - mean)``.

    >>> truncate(np.array([[2.0, -1.0]]), 0.5).tolist()
    [[1.0, -0.5]]
    """
    if not 0.0 <= psi <= 1.0:
        raise ValueError(f"psi must be between 0 and 1, got {psi}")
    latent = np.asarray(latent, dtype=np.float64)
    return np.asarray(mean + psi * (latent - mean))


def sample_digits(
    model: DigitModel, n: int, psi: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` images from ``model`` at truncation ``psi``; returns ``(images, labels)``:
    uint8 (n, side, side) and the digit class of each sample.

    Each sample picks a mixture component and a latent vector ``z ~ N(0, I)``; truncation scales
    ``z`` toward 0, i.e. the sample toward its component's mean. The components and latent
    vectors depend on ``seed`` and ``n`` only, not on ``psi``: every level has the same samples,
    pulled toward their means as psi falls.

    >>> rng = np.random.default_rng(0)
    >>> model = fit_digit_model(rng.uniform(0, 255, (60, 6, 6)), np.arange(60) % 2,
    ...                         n_components=4, cluster_size=10)
    >>> a, la = sample_digits(model, 5, psi=1.0, seed=3)
    >>> b, lb = sample_digits(model, 5, psi=0.0, seed=3)
    >>> a.shape, a.dtype, bool((la == lb).all())
    ((5, 6, 6), dtype('uint8'), True)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    which = rng.choice(len(model.weights), size=n, p=model.weights)
    latent = truncate(rng.standard_normal((n, model.n_components)), psi)
    coords = model.means[which] + np.einsum("nij,nj->ni", model.factors[which], latent)
    return model.decode(coords), model.labels[which]
