"""A set of feature vectors as the sweep sees it: the exact originals plus a float32 frame.

The float32 copies that feed the GEMMs are made block by block, centred and scaled by a power of
two. Centring keeps the rounding error of ``|a|^2 + |b|^2 - 2ab`` proportional to the spread of
the data rather than to its offset (ReLU features sit far from the origin); a power-of-two scale
is exact and keeps float32 far from overflow and underflow. Distances are translation invariant
and scale exactly, so the exact values are always recomputed from the untouched originals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rarity_score.engine.backend import PRECISION_BITS, Backend, input_unit_roundoff
from rarity_score.engine.plan import plan_blocks

_FLOAT32_UNIT_ROUNDOFF = 2.0**-24
#: Unit roundoff of the float32 accumulation assumed for reduced-precision GEMMs: 4u. Tensor
#: cores add the exact products of a block to the accumulator after aligning them to the largest
#: and truncating (Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores",
#: PeerJ CS 2021): truncation has unit roundoff 2u, and each of the n addends of a block loses
#: under an ulp of the largest, at most 2u (n + 1) / n <= 4u of the block's magnitudes.
_TENSOR_CORE_ACCUMULATION = 4.0 * _FLOAT32_UNIT_ROUNDOFF
#: Spreads for which float32 squared distances neither overflow nor lose precision to subnormals;
#: outside it the copies are rescaled (by a power of two: exact); inside, a pass is saved.
_SAFE_SPREAD = (2.0**-30, 2.0**30)


@dataclass(frozen=True)
class Frame:
    """Where the float32 copies are centred (``center``) and how they are scaled (``scale``)."""

    center: np.ndarray
    scale: float

    @classmethod
    def fit(cls, backend: Backend, data: Any) -> Frame:
        # A float32-representable centre: float32 inputs then centre exactly in float32 (one
        # rounding), and the shift from the true mean is a common translation, which is harmless.
        center = backend.column_mean(data).astype(np.float32).astype(np.float64)
        # Scale by the power of two nearest the root-mean-square distance to the centre.
        sample = np.linspace(0, data.shape[0] - 1, min(data.shape[0], 4096)).astype(np.int64)
        spread = float(
            np.sqrt(np.mean(backend.squared_norms(backend.prepare(data, sample, center, 1.0))))
        )
        exponent = 0
        if (
            spread > 0.0
            and math.isfinite(spread)
            and not _SAFE_SPREAD[0] <= spread <= _SAFE_SPREAD[1]
        ):
            exponent = -round(math.log2(spread))
        return cls(center=center, scale=2.0**exponent)


def error_coefficient(dim: int, precision: str = "float32") -> float:
    """c such that a tile entry computed in ``precision`` is within ``c * (|a| + |b|)^2`` of the
    exact squared distance, as long as no intermediate is subnormal (see :func:`error_bound`).

    float32 terms: the GEMM's dot product (at most gamma_D |a||b| <= gamma_D (|a|+|b|)^2 / 4,
    doubled), the rounding of the inputs to float32 (2u (|a|+|b|)^2), of the norms (u) and of the
    two additions (2u); a 25 % margin on top (the realism weights' float32 product needs 2u of
    it). gamma_D = D u / (1 - D u) holds for any summation order, so it covers every BLAS and GPU
    kernel that accumulates in float32.

    ``"tf32"`` / ``"bf16"``: the tile is ``|a|^2 + |b|^2 - 2 a'.b'``, the norms those of the float32
    copies a, b (float64, then float32, as above) and a', b' those copies rounded to nearest to
    10 / 7 mantissa bits, unit roundoff v = 2^-11 / 2^-8, so |a'_i - a_i| <= v |a_i|. Then

    * rounding: |a'.b' - a.b| <= sum |a_i b_i| (2v + v^2) <= (2v + v^2) |a||b|;
    * products: a'_i b'_i have at most 22 significant bits, exact in float32;
    * accumulation in float32 of D products of magnitude sum <= (1 + v)^2 |a||b|, with unit
      roundoff w = 4u (tensor cores align and truncate, see ``_TENSOR_CORE_ACCUMULATION``):
      gamma_D(w) (1 + v)^2 |a||b|.

    With delta = 2v + v^2 + gamma_D(w) (1 + v)^2, the doubled dot product is off by at most
    2 delta |a||b| <= delta (|a|+|b|)^2 / 2, in place of float32's gamma_D / 2; the other terms
    are float32's (the additions see operands larger by a factor 1 + delta at most, which the
    margin covers). Subnormal components round with an absolute error under 2^-134 (2^-126 if
    a GPU flushes them to zero), which moves the tile by at most 2^-125 sqrt(D) (|a|+|b|) <
    2^-114 (|a|+|b|) <= 2^-54 (|a|+|b|)^2 + 2^-174: within the margin (at least 2^-13
    (|a|+|b|)^2 here) and :data:`ABSOLUTE_ERROR`.
    """
    if precision not in PRECISION_BITS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISION_BITS)}")
    u = _FLOAT32_UNIT_ROUNDOFF
    if precision == "float32":
        if dim * u >= 0.5:
            raise ValueError(f"feature dimension {dim} is too large for float32 accumulation")
        gamma = dim * u / (1.0 - dim * u)
        return 1.25 * (gamma / 2.0 + 6.0 * u)
    v = input_unit_roundoff(precision)
    w = _TENSOR_CORE_ACCUMULATION
    if dim * w >= 0.5:
        raise ValueError(
            f"feature dimension {dim} is too large for float32 accumulation in {precision}"
        )
    gamma = dim * w / (1.0 - dim * w)
    delta = 2.0 * v + v * v + gamma * (1.0 + v) ** 2
    return 1.25 * (delta / 2.0 + 6.0 * u)


#: Subnormal float32 results round with an absolute error up to 2^-150 each, which no relative
#: bound covers: 2D + 8 such roundings are at most (2D + 8) 2^-150 < 2^-100 for any D float32
#: can accumulate (tensor cores that flush subnormal partial sums to zero lose under D 2^-126 <=
#: 2^-105 more). Entries this close to a boundary are always re-decided in float64.
ABSOLUTE_ERROR = 2.0**-100


#: Largest norm of a float32 copy (frame units): squared distances up to (2 MAX_NORM)^2 = 2^122
#: stay finite in float32 with room for the GEMM's intermediate sums.
MAX_NORM = 2.0**60


def error_bound(dim: int, norm_sum: np.ndarray | float, precision: str = "float32") -> np.ndarray:
    """Bound on the error of tile entries computed in ``precision`` whose two points have norms
    summing to ``norm_sum`` (frame units)."""
    return error_coefficient(dim, precision) * np.square(norm_sum) + ABSOLUTE_ERROR


@dataclass
class PointSet:
    """Feature vectors on a backend, visited in ``order`` (position p is original row order[p]).

    Tiles of the set are computed in its backend's precision, and every bound on their error
    comes from :meth:`error_bound`, which follows it.
    """

    backend: Backend
    data: Any
    frame: Frame
    order: np.ndarray
    norms: np.ndarray  # norms of the float32 copies, by position
    #: Bytes of float32 blocks kept for reuse between tiles (0: recompute every time).
    cache_bytes: int = 0
    _cache: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)
    #: Where ``data`` was sent, by Dask client id (:mod:`~rarity_score.engine.distributed`):
    #: shared by the point sets made from one array in one evaluation, so that it travels once.
    shipped: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        backend: Backend,
        data: Any,
        frame: Frame,
        order: np.ndarray | None = None,
        cache_bytes: int = 0,
        edge: int = 4096,
        label: str = "features",
        shipped: dict[str, Any] | None = None,
    ) -> PointSet:
        """Compute the norms of the float32 copies, keeping the copies (blocks of ``edge`` rows,
        as the sweep will ask for them) while they fit in ``cache_bytes``. ``label`` names the
        set in errors (``"generated features fake.npz"``)."""
        n = data.shape[0]
        order = np.arange(n, dtype=np.int64) if order is None else np.asarray(order, np.int64)
        points = cls(backend, data, frame, order, np.empty(n, dtype=np.float64), cache_bytes)
        if shipped is not None:
            points.shipped = shipped
        for start, stop in plan_blocks(n, edge):
            # Norms of the float32 copies, before any rounding to the GEMMs' precision.
            copies = points._copies(start, stop)
            points.norms[start:stop] = np.sqrt(backend.squared_norms(copies))
            points._keep((start, stop), backend.gemm_operand(copies))
        far = np.flatnonzero(~(points.norms <= MAX_NORM))
        if len(far):
            distance = points.norms[far[0]] / frame.scale
            at = f", {distance:.3g} from the reference centre" if math.isfinite(distance) else ""
            rows = f"{len(far)} rows (first: row" if len(far) > 1 else "1 row (row"
            raise ValueError(
                f"{label}: {rows} {order[far[0]]}{at}) "
                f"{'lie' if len(far) > 1 else 'lies'} some 1e18 times or more farther out than the "
                "reference features spread; float32 tiles cannot hold such distances. Check that "
                "both sets come from the same extractor and preprocessing, or remove those rows"
            )
        return points

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def precision(self) -> str:
        """The precision of this set's tiles: its backend's."""
        return self.backend.precision

    def error_bound(self, norm_sum: np.ndarray | float) -> np.ndarray:
        """:func:`error_bound` of this set's tiles (dimension and precision)."""
        return error_bound(self.dim, norm_sum, self.backend.precision)

    def reordered(self, order: np.ndarray) -> PointSet:
        """The same set visited in another order (positions of the current order); cached blocks
        are not carried over."""
        return PointSet(
            self.backend,
            self.data,
            self.frame,
            self.order[order],
            self.norms[order],
            self.cache_bytes,
            shipped=self.shipped,
        )

    def block(self, start: int, stop: int) -> Any:
        """The rows at positions ``start:stop`` as the GEMMs read them (float32 copies, rounded to
        the backend's precision), kept for reuse while they fit in ``cache_bytes``."""
        key = (start, stop)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        return self._keep(key, self.backend.gemm_operand(self._copies(start, stop)))

    def _copies(self, start: int, stop: int) -> Any:
        """Float32 copies of the rows at positions ``start:stop`` (frame units)."""
        return self.backend.prepare(
            self.data, self.order[start:stop], self.frame.center, self.frame.scale
        )

    def _keep(self, key: tuple[int, int], block: Any) -> Any:
        """``block``, cached under ``key`` if it fits in ``cache_bytes``."""
        start, stop = key
        # A snapshot of the values: threads of one Dask worker share a point set and its cache.
        held = sum(b.shape[0] * b.shape[1] * 4 for b in list(self._cache.values()))
        if held + (stop - start) * self.dim * 4 <= self.cache_bytes:
            self._cache[key] = block
        return block

    def to_frame_units(self, squared_distance: np.ndarray) -> np.ndarray:
        """Exact squared distances expressed in the units of the float32 copies (exact: scale is a
        power of two)."""
        return squared_distance * (self.frame.scale * self.frame.scale)

    def exact_sqdist(
        self, positions: np.ndarray, other: PointSet, other_positions: np.ndarray
    ) -> np.ndarray:
        """Exact float64 squared distances, in original units, of position pairs."""
        return self.backend.exact_sqdist(
            self.data, self.order[positions], other.data, other.order[other_positions]
        )
