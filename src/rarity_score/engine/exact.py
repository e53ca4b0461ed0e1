"""Exact order statistics from float32 tiles: k-NN radii, nearest neighbours, best ratios.

Each query (a row or a column of the sweep) keeps a few float32 candidates for its smallest values.
At the end the candidates that the error bound (of the precision the tiles were computed in)
cannot rule out are recomputed in float64 from the original features, and a certificate checks
that nothing dropped on the way could have mattered; the rare query without one (many exact ties)
is recomputed against every reference. Both are counted in the backend's
:class:`~rarity_score.engine.backend.SweepCounts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rarity_score.engine.points import ABSOLUTE_ERROR, PointSet
from rarity_score.engine.sweep import NeverSettles, sweep
from rarity_score.engine.tiles import Tile

#: Candidates kept per query beyond the rank asked for: room for near-ties within the error bound.
EXTRA_CANDIDATES = 6
#: The same for each precision of the tiles: a wider bound holds more near-ties, and a query whose
#: candidates do not certify its answer is recomputed against every reference. Measured on
#: CNN-like features (benchmarks/bench_precision.py, 4,000 x 4,000 x 512 and 2,000 x 2,000 x
#: 2,048, k = 3): bf16 with 6 extra left 2 % of the queries uncertified, with 12 none.
_EXTRA_BY_PRECISION = {"float32": EXTRA_CANDIDATES, "tf32": 12, "bf16": 24}


def extra_candidates(precision: str) -> int:
    """Candidates to keep per query beyond the rank asked for, for tiles in ``precision``."""
    return _EXTRA_BY_PRECISION[precision]


class Smallest(NeverSettles):
    """Per query, float32 candidates for its ``count`` smallest values.

    ``axis=1``: queries are the rows of the sweep and references its columns; ``axis=0`` the
    reverse. ``weights`` (frame units, by reference position) multiply the distances; ``refs_in``
    limits the references to a range of positions.
    """

    def __init__(
        self,
        n_queries: int,
        count: int,
        axis: int,
        weights: np.ndarray | None = None,
        refs_in: tuple[int, int] | None = None,
    ) -> None:
        self.count = count
        self.axis = axis
        self.weights = weights
        self.refs_in = refs_in
        self.values = np.full((n_queries, count), np.inf, dtype=np.float32)
        self.index = np.full((n_queries, count), -1, dtype=np.int64)

    def partial(self, tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.refs_in is not None:
            # References are the rows when queries are columns (axis 0), and vice versa.
            restricted = tile.restricted(self.axis, *self.refs_in)
            if restricted is None:
                return _NO_PAIRS
            tile = restricted
        queries = tile.col_positions if self.axis == 0 else tile.row_positions
        refs = tile.row_positions if self.axis == 0 else tile.col_positions
        weights = None if self.weights is None else self.weights[refs]
        # The current count-th value is only a hint that lets the backend skip hopeless entries;
        # the merged result is the same with or without it.
        bound = self.values[queries].max(axis=1)
        i, j, value = tile.smallest(self.count, self.axis, bound, weights)
        return (j, i, value) if self.axis == 0 else (i, j, value)

    def absorb(self, partial: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        queries, refs, values = partial
        if len(queries) == 0:
            return
        touched = np.unique(queries)
        all_queries = np.concatenate([np.repeat(touched, self.count), queries])
        all_values = np.concatenate([self.values[touched].ravel(), values.astype(np.float32)])
        all_refs = np.concatenate([self.index[touched].ravel(), refs])
        order = np.argsort(_query_value_key(all_queries, all_values, all_refs < 0), kind="stable")
        sorted_queries = all_queries[order]
        starts = np.searchsorted(sorted_queries, touched)
        counts = np.diff(np.append(starts, len(sorted_queries)))
        rank = np.arange(len(sorted_queries)) - np.repeat(starts, counts)
        keep = rank < self.count
        kept = order[keep]
        self.values[sorted_queries[keep], rank[keep]] = all_values[kept]
        self.index[sorted_queries[keep], rank[keep]] = all_refs[kept]

    def as_partial(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kept candidates as one partial (queries with none are left out)."""
        queries, slots = np.nonzero(self.index >= 0)
        return queries, self.index[queries, slots], self.values[queries, slots]

    def finalize(
        self,
        queries: PointSet,
        refs: PointSet,
        rank: int,
        *,
        same_set: bool = False,
        need_index: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``rank``-th smallest value of each query, in frame units times the weights, and
        (for ``need_index``) the reference position of the smallest, ties going to the smallest
        original index."""
        n = len(self.values)
        valid = self.index >= 0
        slot_refs = np.where(valid, self.index, 0)
        weights = np.ones(len(refs)) if self.weights is None else self.weights
        # Weighted float32 products can be subnormal too: the absolute term is added unweighted.
        error = queries.error_bound(queries.norms[:, None] + refs.norms[slot_refs])
        error = error * weights[slot_refs] + ABSOLUTE_ERROR
        values = self.values.astype(np.float64)
        upper = np.where(valid, values + error, np.inf)
        lower = np.where(valid, values - error, np.inf)
        limit = np.partition(upper, rank - 1, axis=1)[:, rank - 1]
        candidate = valid & (lower <= limit[:, None])
        candidate &= ~_surely_below(lower, upper, candidate, rank)

        q, slot = np.nonzero(candidate)
        r = self.index[q, slot]
        counts = queries.backend.counts
        counts.candidates += len(q)
        exact = np.full((n, self.count), np.inf)
        exact[q, slot] = _exact_values(queries, q, refs, r, weights)
        # Candidates surely below the rank-th were skipped: the rank-th is then a smaller rank
        # among those left.
        skipped = (valid & (lower <= limit[:, None])).sum(axis=1) - candidate.sum(axis=1)
        result = np.sort(exact, axis=1)[np.arange(n), rank - 1 - skipped]

        # Anything dropped was at least the count-th value kept, less its error bound.
        lo, hi = self.refs_in or (0, len(refs))
        largest_error = queries.error_bound(queries.norms + refs.norms[lo:hi].max())
        largest_error = largest_error * weights[lo:hi].max() + ABSOLUTE_ERROR
        dropped_floor = np.maximum(0.0, values.max(axis=1) - largest_error)
        nothing_dropped = ~valid.all(axis=1)
        certain = result < dropped_floor if need_index else result <= dropped_floor
        certain |= nothing_dropped

        best = np.full(n, -1, dtype=np.int64)
        if need_index:
            ties = exact == result[:, None]
            original = np.where(ties, refs.order[slot_refs], np.iinfo(np.int64).max)
            best = self.index[np.arange(n), np.argmin(original, axis=1)]
        uncertain = np.flatnonzero(~certain)
        counts.scanned_queries += len(uncertain)
        for query in uncertain.tolist():
            result[query], best[query] = _scan(
                queries, query, refs, rank, weights, (lo, hi), same_set
            )
        return result, best


def _query_value_key(queries: np.ndarray, values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """One uint64 per entry that sorts by query, then by float32 value, with ``empty`` slots after
    every value, +inf included (a single argsort is many times faster than lexsort)."""
    bits = values.astype(np.float32).view(np.int32)
    # Negative floats order backwards as integers: flip their magnitude bits.
    ordered = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int64) + 2**31
    ordered[empty] = 2**32 - 1
    return (queries.astype(np.uint64) << np.uint64(32)) | ordered.astype(np.uint64)


def _surely_below(
    lower: np.ndarray, upper: np.ndarray, candidate: np.ndarray, rank: int
) -> np.ndarray:
    """Candidates certainly among the ``rank - 1`` smallest: their upper bound is below the lower
    bound of every other candidate that is not itself surely below. Their exact values do not
    change the rank-th value, so they need no float64 recomputation."""
    if rank == 1:
        return np.zeros_like(candidate)
    order = np.argsort(np.where(candidate, lower, np.inf), axis=1, kind="stable")
    rows = np.arange(len(lower))[:, None]
    lower_sorted = np.where(candidate, lower, np.inf)[rows, order]
    upper_sorted = np.where(candidate, upper, np.inf)[rows, order]
    # Sorted by lower bound, item m is surely below all later items when the running maximum of
    # upper bounds up to m is below the lower bound of item m + 1.
    running_upper = np.maximum.accumulate(upper_sorted, axis=1)
    separated = running_upper[:, :-1] < lower_sorted[:, 1:]
    # Only a prefix of length < rank can be skipped, and only at a separation point.
    prefix = np.zeros(len(lower), dtype=np.int64)
    for m in range(min(rank - 1, separated.shape[1])):
        prefix = np.where(separated[:, m], m + 1, prefix)
    surely = np.zeros_like(candidate)
    take = np.arange(lower.shape[1])[None, :] < prefix[:, None]
    surely[rows.repeat(lower.shape[1], axis=1)[take], order[take]] = True
    return surely


_NO_PAIRS = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


def _exact_values(
    queries: PointSet, q: np.ndarray, refs: PointSet, r: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    return refs.to_frame_units(queries.exact_sqdist(q, refs, r)) * weights[r]


def _scan(
    queries: PointSet,
    query: int,
    refs: PointSet,
    rank: int,
    weights: np.ndarray,
    refs_in: tuple[int, int],
    same_set: bool,
) -> tuple[float, int]:
    """The exact answer for one query against every reference: the fallback without certificate."""
    candidates = np.arange(*refs_in)
    if same_set:
        candidates = candidates[candidates != query]
    exact = _exact_values(queries, np.full(len(candidates), query), refs, candidates, weights)
    value = float(np.partition(exact, rank - 1)[rank - 1])
    ties = candidates[exact == exact.min()]
    return value, int(ties[np.argmin(refs.order[ties])])


def knn_radii(
    points: PointSet,
    k: int,
    edge: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Exact k-NN radii, by position, in original units: the distance from each point to its k-th
    nearest other point (self excluded by index; duplicates count, so a radius can be 0)."""
    return knn_distances(points, (k,), edge, progress)[0]


def knn_distances(
    points: PointSet,
    ranks: Sequence[int],
    edge: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Exact distances from each point to its ``rank``-th nearest other point, for every rank, from
    one sweep: shape ``(len(ranks), len(points))``, by position, original units (self excluded by
    index; duplicates count, so a distance can be 0).

    One selection keeps candidates for the largest rank; each rank is then finalized from it with
    its own certificate, so asking for rank 1 beside rank k costs no tile.
    """
    if not ranks or min(ranks) < 1:
        raise ValueError(f"ranks must be positive, got {tuple(ranks)}")
    selection = Smallest(len(points), max(ranks) + extra_candidates(points.precision), axis=1)
    sweep(points, points, [selection], edge, same_set=True, symmetric=True, progress=progress)
    out = np.empty((len(ranks), len(points)))
    done: dict[int, np.ndarray] = {}
    for i, rank in enumerate(ranks):
        if rank not in done:
            squared, _ = selection.finalize(points, points, rank, same_set=True)
            # As the nearest real distance is taken (sqrt, then the exact power-of-two unscaling),
            # so that the two compare as the float64 distances they are (authenticity).
            done[rank] = np.sqrt(squared) / points.frame.scale
        out[i] = done[rank]
    return out
