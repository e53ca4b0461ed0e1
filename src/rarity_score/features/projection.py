"""Principal-component projection of a feature space: the ``+pcaN`` of a space spec.

A space spec is an extractor name, optionally followed by ``+pcaN`` (``pixels+pca64``): the
features of that extractor, projected on the N leading principal directions of the REAL set.
The directions come from a float64 SVD of the centred real features (``numpy.linalg.svd``), their
signs fixed so that each direction's largest-magnitude loading is positive (the first of them
when several tie), which makes the projection a function of the real features alone: the same
on every machine up to rounding, whatever sign LAPACK returns. The same projection (the real
mean, the same directions) is then applied to every set, real and generated.

N may be at most ``rows - 1`` of the real set (a centred set of ``rows`` samples spans at most
``rows - 1`` directions; a further one would be an arbitrary direction of zero variance, chosen
by rounding) and at most its dimension; the real features must also vary along N directions
(the singular values above numpy's ``matrix_rank`` tolerance).

Cost: the SVD of a ``rows x dim`` matrix, ``O(rows * dim * min(rows, dim))``; a few seconds for
10,000 x 3,072 (``pixels``), minutes for 10,000 x 25,088 (``vgg16-pool5``), and float64 copies
of the real features and of the factors in memory.

>>> import numpy as np
>>> parse_space("pixels+pca64")
('pixels', 64)
>>> real = np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 2.0]])  # on one line through (2, 1)
>>> projection = Projection.fit(real, 1)
>>> projection.mean, np.round(projection.components, 4)
(array([2., 1.]), array([[0.8944, 0.4472]]))
>>> np.round(projection.apply(real), 4).ravel()
array([-2.2361,  0.    ,  2.2361])
>>> np.round(projection.apply(np.array([[3.0, 3.0]])), 4)
array([[1.7889]])
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from rarity_score.features.pipeline import FeatureSet

__all__ = ["Projection", "parse_space", "project"]

#: ``pcaN``, N a whole number from 1, written without leading zeros (one spelling per space).
_PCA = re.compile(r"pca([1-9][0-9]*)")


def parse_space(spec: str) -> tuple[str, int | None]:
    """Split a space spec into the extractor's name and the number of principal directions
    (``None`` without ``+pcaN``).

    >>> parse_space("pixels+pca64")
    ('pixels', 64)
    >>> parse_space("efficientnet-lite0-stage2")
    ('efficientnet-lite0-stage2', None)
    >>> parse_space("pixels+pca0")
    Traceback (most recent call last):
    ...
    ValueError: space 'pixels+pca0' is neither NAME nor NAME+pcaN ...

    Raises:
        ValueError: an empty spec, or a ``+`` part that is not ``pcaN`` with N >= 1.
    """
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise ValueError(f"empty space spec {spec!r}: give an extractor name, e.g. pixels+pca64")
    base, plus, suffix = text.rpartition("+")
    if not plus:
        return text, None
    if _PCA.fullmatch(suffix) is None or not base or base != base.strip() or "+" in base:
        raise ValueError(
            f"space {spec!r} is neither NAME nor NAME+pcaN with N a whole number from 1 "
            "(e.g. pixels+pca64)"
        )
    return base, int(suffix[3:])


def _matrix(values: object, what: str) -> np.ndarray:
    """``values`` as a finite float64 2-D array (a copy only where the dtype changes)."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows, dim), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{what} must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)  # float16/32 upcast exactly
    if not np.isfinite(array).all():
        raise ValueError(f"{what} hold NaN or infinite values")
    return array


@dataclass(frozen=True)
class Projection:
    """The N leading principal directions of a real set, and its mean.

    Attributes:
        mean: (D,) float64, the real features' mean.
        components: (N, D) float64, orthonormal rows, the leading direction first, each with its
            largest-magnitude entry positive.

    Both are read-only copies.
    """

    mean: np.ndarray
    components: np.ndarray

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=np.float64)
        components = np.array(self.components, dtype=np.float64)
        if mean.ndim != 1 or components.ndim != 2 or components.shape[1] != mean.shape[0]:
            raise ValueError(
                f"a projection needs a (D,) mean and (N, D) components, got {mean.shape} and "
                f"{components.shape}"
            )
        mean.setflags(write=False)
        components.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", components)

    @property
    def n(self) -> int:
        """Number of directions: the dimension of the projected features."""
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of the features it applies to."""
        return int(self.components.shape[1])

    @classmethod
    def fit(cls, real: np.ndarray, n: int) -> Projection:
        """The projection on the ``n`` leading principal directions of ``real`` (rows,
        dim): the first ``n`` right singular vectors of ``real - real.mean(0)`` in float64,
        signs fixed as the module says.

        Raises:
            ValueError: ``real`` is not a finite 2-D array; ``n`` is not a whole number from 1,
                or exceeds ``min(rows - 1, dim)`` or the number of directions the real features
                vary along.
        """
        x = _matrix(real, "the real features")
        rows, dim = x.shape
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(
                f"the number of principal directions must be a whole number from 1, got {n!r}"
            )
        n = int(n)
        if n > min(rows - 1, dim):
            raise ValueError(
                f"cannot project on {n} principal directions: the real set has {rows} samples "
                f"of dimension {dim}, which span at most {max(min(rows - 1, dim), 0)} (a centred "
                f"set of m samples spans at most m - 1 directions); use +pcaN with a smaller N "
                "or more real images"
            )
        mean = x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
        # numpy.linalg.matrix_rank's tolerance: below it a direction is rounding, not variance.
        tolerance = singular[0] * max(rows, dim) * np.finfo(np.float64).eps
        rank = int(np.count_nonzero(singular > tolerance))
        if n > rank:
            raise ValueError(
                f"cannot project on {n} principal directions: the {rows} real features vary "
                f"along only {rank} (the others have zero variance); use +pca{rank} or less"
                if rank
                else f"cannot project on {n} principal directions: the {rows} real features "
                "are all equal"
            )
        components = vt[:n].copy()
        # argmax takes the first of tied magnitudes; a unit row has a non-zero largest entry.
        largest = components[np.arange(n), np.abs(components).argmax(axis=1)]
        components *= np.sign(largest)[:, None]
        return cls(mean=mean, components=components)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(features - mean) @ components.T``: (rows, D) -> float64 (rows, N).

        Raises:
            ValueError: not a finite 2-D array with D columns.
        """
        x = _matrix(features, "the features to project")
        if x.shape[1] != self.dim:
            raise ValueError(
                f"the features to project have dimension {x.shape[1]}, but the projection was "
                f"fitted on {self.dim}-dimensional real features; both must come from one "
                "extractor"
            )
        projected: np.ndarray = (x - self.mean) @ self.components.T
        return projected


def project(feature_set: FeatureSet, projection: Projection, spec: str) -> FeatureSet:
    """``feature_set`` in the projected space ``spec`` (e.g. ``"pixels+pca64"``).

    The names, skipped images, source, weights fingerprint and images fingerprint stay; the
    features are ``projection.apply(...)`` (float64), the extractor becomes ``spec`` and the
    preprocessing gains "; then projected on the N leading principal directions of the real
    set" (an unknown preprocessing, ``""``, stays unknown).

    >>> import numpy as np
    >>> real = FeatureSet(np.eye(3), names=["a", "b", "c"], extractor="pixels",
    ...                   preprocessing="PIL bicubic resize to 1x1")
    >>> projected = project(real, Projection.fit(real.features, 2), "pixels+pca2")
    >>> projected.extractor, projected.dim, projected.names
    ('pixels+pca2', 2, ['a', 'b', 'c'])
    >>> print(projected.preprocessing)
    PIL bicubic resize to 1x1; then projected on the 2 leading principal directions of the
    real set

    Raises:
        ValueError: ``spec`` has no ``+pcaN``, or one whose N differs from the projection's, or
            names another extractor than the set records; features that do not fit.
    """
    base, n = parse_space(spec)
    if n is None:
        raise ValueError(f"space {spec!r} has no +pcaN: there is nothing to project")
    if n != projection.n:
        raise ValueError(
            f"space {spec!r} asks for {n} principal directions but the projection has "
            f"{projection.n}"
        )
    if feature_set.extractor and feature_set.extractor.strip().lower() != base.lower():
        raise ValueError(
            f"space {spec!r} is a projection of {base} features, but "
            f"{feature_set.source or 'the set'} holds {feature_set.extractor} features"
        )
    preprocessing = feature_set.preprocessing
    if preprocessing:
        preprocessing += f"; then projected on the {n} leading principal directions of the real set"
    return dataclasses.replace(
        feature_set,
        features=projection.apply(feature_set.features),
        names=list(feature_set.names),
        skipped=list(feature_set.skipped),
        extractor=spec.strip(),
        preprocessing=preprocessing,
    )
