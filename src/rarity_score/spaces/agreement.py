"""How far two feature spaces agree on one set: pure functions of the rarity arrays.

Scores in different spaces have different units, so only ranks and flags are compared. For one
set and a pair of spaces ``a``, ``b`` with rarity arrays ``ra``, ``rb`` (NaN: out of the
manifold in that space), :func:`agree` gives:

- ``n_in_both``: the samples in the manifold in both spaces (``both``); ``spearman`` and
  ``kendall`` (tau-b) rank correlations of their rarities, ``scipy.stats.spearmanr`` and
  ``kendalltau``; None when ``n_in_both < 2`` or a side is constant (undefined). Identical
  rankings give exactly 1 (scipy's arithmetic can land an ulp below).
- ``in_in``, ``in_out`` (in ``a``, out of ``b``), ``out_in``, ``out_out`` and Cohen's kappa of
  the two in-manifold flag arrays (``sklearn.metrics.cohen_kappa_score``); None where it is
  undefined (no samples, or both flag arrays constant and equal: chance agreement 1).
- ``jaccard_rarest``: among the ``both`` samples, ``m = ceil(fraction * n_in_both)``; the
  rarest set of a space is every ``both`` sample whose rarity in that space is at least the
  ``m``-th largest of their rarities there, so samples tied at the boundary are all in and the
  set may hold more than ``m`` (the result depends on the values only, never on the order of
  the rows); ``|A & B| / |A | B|`` of the two spaces' sets. ``jaccard_common`` the same with
  the most common: rarity at most the ``m``-th smallest. None when ``n_in_both`` is 0 or a side
  is constant over the ``both`` samples (every sample tied: no rarest set), as for the
  correlations. The fraction is taken as the decimal it reads as, so 10 % of 30 is 3.

:func:`percentiles` places each sample within its own space: 0 the most common, 100 the rarest.

scipy and scikit-learn come with the ``spaces`` extra; a missing one is a
:class:`~rarity_score._errors.MissingDependency` naming it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

from rarity_score._errors import require

__all__ = [
    "FRACTION",
    "ROW_KEYS",
    "PairAgreement",
    "agree",
    "agreement_rows",
    "percentiles",
    "rarest_count",
    "require_libraries",
]

#: The share of the samples in both manifolds whose rarest (and most common) sets are compared.
FRACTION = 0.1

#: The keys of a row of ``summary.json`` (and the columns of ``summary.csv``), in order.
ROW_KEYS = (
    "set",
    "space_a",
    "space_b",
    "n",
    "n_in_both",
    "spearman",
    "kendall",
    "in_in",
    "in_out",
    "out_in",
    "out_out",
    "kappa",
    "jaccard_rarest",
    "jaccard_common",
)


def _stats() -> ModuleType:
    return require("scipy.stats", what="rarity spaces", package="scipy", extra="spaces")


def _kappa_module() -> ModuleType:
    return require("sklearn.metrics", what="rarity spaces", package="scikit-learn", extra="spaces")


def require_libraries() -> None:
    """Import scipy and scikit-learn now, so that a run that will need them says so before any
    work (:class:`~rarity_score._errors.MissingDependency`, naming the ``spaces`` extra)."""
    _stats()
    _kappa_module()


@dataclass(frozen=True)
class PairAgreement:
    """The agreement of two spaces on one set (see the module's documentation); None where a
    value is undefined (null in ``summary.json``)."""

    n: int
    n_in_both: int
    spearman: float | None
    kendall: float | None
    in_in: int
    in_out: int
    out_in: int
    out_out: int
    kappa: float | None
    jaccard_rarest: float | None
    jaccard_common: float | None

    def row(self, set_name: str, space_a: str, space_b: str) -> dict[str, Any]:
        """The row of ``summary.json``: the set, the two spaces, then these values."""
        return {"set": set_name, "space_a": space_a, "space_b": space_b, **asdict(self)}


def _rarity(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, not of shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"{what} holds an infinite rarity (NaN stands for out of the manifold)")
    return array


def percentiles(rarity: Any) -> np.ndarray:
    """Each sample's place among the set's in-manifold samples of its space, in percent:
    ``100 * (rankdata(rarity, "average") - 1) / (n_in - 1)`` (0: the most common, 100: the
    rarest; 50 when only one sample is in the manifold); NaN out of the manifold. A 2-D
    ``rarity`` (samples x spaces) gives the percentiles of each column.

    >>> percentiles([0.5, float("nan"), 2.0, 1.0, 1.0]).tolist()
    [0.0, nan, 100.0, 50.0, 50.0]
    >>> percentiles([3.0, float("nan")]).tolist()
    [50.0, nan]
    """
    array = np.asarray(rarity, dtype=np.float64)
    if array.ndim == 2:
        out = np.empty_like(array)
        for column in range(array.shape[1]):
            out[:, column] = percentiles(array[:, column])
        return out
    array = _rarity(array, "rarity")
    out = np.full(array.shape, np.nan)
    inside = np.isfinite(array)
    n_in = int(inside.sum())
    if n_in == 1:
        out[inside] = 50.0
    elif n_in > 1:
        ranks = _stats().rankdata(array[inside], method="average")
        out[inside] = 100.0 * (ranks - 1.0) / (n_in - 1)
    return out


def rarest_count(n_in_both: int, fraction: float = FRACTION) -> int:
    """``ceil(fraction * n_in_both)``, the fraction read as the decimal it is written as (so
    that ``0.1 * 30`` is 3, not the 4 of binary floating point).

    >>> rarest_count(30), rarest_count(31), rarest_count(0), rarest_count(5, 0.5)
    (3, 4, 0, 3)
    """
    return math.ceil(Fraction(repr(float(fraction))) * n_in_both)


def _correlations(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Spearman and Kendall tau-b of ``x`` and ``y`` (finite, same length)."""
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    stats = _stats()
    if np.array_equal(stats.rankdata(x), stats.rankdata(y)):
        return 1.0, 1.0  # identical rankings: 1 by definition
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined cases come back as NaN: None below
        spearman = float(stats.spearmanr(x, y)[0])
        kendall = float(stats.kendalltau(x, y, variant="b")[0])
    return (
        spearman if math.isfinite(spearman) else None,
        kendall if math.isfinite(kendall) else None,
    )


def _kappa(fa: np.ndarray, fb: np.ndarray) -> float | None:
    if fa.size == 0:
        return None
    constant_a, constant_b = bool(fa.all() or not fa.any()), bool(fb.all() or not fb.any())
    if constant_a and constant_b and fa[0] == fb[0]:
        return None  # both constant and equal: chance agreement is 1, kappa 0 / 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = float(_kappa_module().cohen_kappa_score(fa, fb))
    return kappa if math.isfinite(kappa) else None


def _jaccard(x: np.ndarray, y: np.ndarray, m: int, rarest: bool) -> float | None:
    """Jaccard index of the rarest (or most common) sets by ``x`` and by ``y``: each the rows
    whose value reaches the ``m``-th largest (smallest) value, ties at that boundary all in."""
    if m == 0 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None  # a constant side: every row ties, there is no rarest set
    a, b = _extreme(x, m, rarest), _extreme(y, m, rarest)
    return int((a & b).sum()) / int((a | b).sum())


def _extreme(values: np.ndarray, m: int, rarest: bool) -> np.ndarray:
    """The rows at or beyond the ``m``-th largest (``rarest``) or smallest value, as a mask."""
    ordered = np.sort(values)
    if rarest:
        return values >= ordered[values.size - m]
    return values <= ordered[m - 1]


def agree(ra: Any, rb: Any, *, fraction: float = FRACTION) -> PairAgreement:
    """The agreement of two spaces on one set, from the rarity of each sample in each (NaN: out
    of the manifold); see the module's documentation for each value.

    >>> nan = float("nan")
    >>> result = agree([1.0, 2.0, 3.0, nan, 5.0], [10.0, 30.0, 20.0, 4.0, nan])
    >>> result.n_in_both, result.spearman, (result.in_in, result.in_out, result.out_in)
    (3, 0.5, (3, 1, 1))
    >>> result.kappa, result.jaccard_rarest, result.jaccard_common
    (-0.25, 0.0, 1.0)
    """
    ra, rb = _rarity(ra, "rarity of space a"), _rarity(rb, "rarity of space b")
    if ra.shape != rb.shape:
        raise ValueError(f"rarity arrays of different lengths ({ra.size} and {rb.size})")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    fa, fb = np.isfinite(ra), np.isfinite(rb)
    both = fa & fb
    n_in_both = int(both.sum())
    x, y = ra[both], rb[both]
    spearman, kendall = _correlations(x, y)
    m = rarest_count(n_in_both, fraction)
    return PairAgreement(
        n=int(ra.size),
        n_in_both=n_in_both,
        spearman=spearman,
        kendall=kendall,
        in_in=n_in_both,
        in_out=int((fa & ~fb).sum()),
        out_in=int((~fa & fb).sum()),
        out_out=int((~fa & ~fb).sum()),
        kappa=_kappa(fa, fb),
        jaccard_rarest=_jaccard(x, y, m, rarest=True),
        jaccard_common=_jaccard(x, y, m, rarest=False),
    )


def agreement_rows(
    set_name: str, space_names: Sequence[str], rarity: Any, *, fraction: float = FRACTION
) -> list[dict[str, Any]]:
    """The ``summary.json`` rows of one set: one per pair of spaces ``a < b`` in the order of
    ``space_names``; ``rarity`` is (samples, spaces), one column per space.

    >>> rows = agreement_rows("s", ["A", "B", "C"], [[1.0, 2.0, 3.0], [2.0, 4.0, 1.0]])
    >>> [(row["space_a"], row["space_b"], row["n_in_both"]) for row in rows]
    [('A', 'B', 2), ('A', 'C', 2), ('B', 'C', 2)]
    """
    array = np.asarray(rarity, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(space_names):
        raise ValueError(
            f"rarity must be (samples, {len(space_names)} spaces), not of shape {array.shape}"
        )
    rows = []
    for a in range(len(space_names)):
        for b in range(a + 1, len(space_names)):
            agreement = agree(array[:, a], array[:, b], fraction=fraction)
            rows.append(agreement.row(set_name, space_names[a], space_names[b]))
    return rows
