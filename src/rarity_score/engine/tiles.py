"""Tiles: block sizes from a memory budget, and one (row block, column block) of distances.

A :class:`Tile` holds float32 squared distances of a row block against a column block and answers,
exactly, the questions the metrics ask of it. Float32 entries far from a decision boundary decide
it; the few within the rounding bound of :func:`~rarity_score.engine.points.error_coefficient` are
re-decided from float64 distances of the original features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rarity_score.engine.points import PointSet, error_coefficient

#: Bytes one tile entry may cost at worst: the float32 distance, a weighted copy, a mask, and, when
#: every entry is a candidate (k close to N), its row, column and value as a pair list.
BYTES_PER_ENTRY = 4 + 4 + 1 + 8 + 8 + 4


def plan_blocks(n: int, edge: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into nearly equal consecutive blocks of at most ``edge`` items."""
    count = max(1, math.ceil(n / max(1, edge)))
    size = math.ceil(n / count)
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def tile_edge(memory_budget: int, tile_size: int | None = None) -> int:
    """Edge of a square tile that fits ``memory_budget`` bytes (or ``tile_size`` if given)."""
    if tile_size is not None:
        if tile_size < 1:
            raise ValueError(f"tile_size must be at least 1, got {tile_size}")
        return int(tile_size)
    if memory_budget < 2**20:
        raise ValueError(f"memory_budget must be at least 1 MiB, got {memory_budget} bytes")
    return max(64, math.isqrt(memory_budget // BYTES_PER_ENTRY))


def f32_below(x: np.ndarray) -> np.ndarray:
    """The largest float32 values certainly below ``x`` (one float32 step under its rounding)."""
    return np.nextafter(np.asarray(x, dtype=np.float32), np.float32(-np.inf))


def f32_above(x: np.ndarray) -> np.ndarray:
    """The smallest float32 values certainly above ``x``."""
    return np.nextafter(np.asarray(x, dtype=np.float32), np.float32(np.inf))


@dataclass
class Tile:
    """Squared distances of rows ``row_positions`` of ``rows`` against ``col_positions`` of ``cols``.

    Positions index the sets in their visiting order. ``row_radii``/``col_radii`` are the exact k-NN
    radii of each set by position (original units), when the metrics need spheres of that side.
    """

    rows: PointSet
    cols: PointSet
    row_positions: np.ndarray
    col_positions: np.ndarray
    values: Any  # backend float32 array, frame units
    row_radii: np.ndarray | None = None
    col_radii: np.ndarray | None = None
    _inside: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_positions), len(self.col_positions)

    def transposed(self) -> Tile:
        """The same tile seen from the column set (for symmetric sweeps of a set with itself)."""
        return Tile(
            self.cols,
            self.rows,
            self.col_positions,
            self.row_positions,
            self.values.T,
            self.col_radii,
            self.row_radii,
        )

    def restricted(self, axis: int, start: int, stop: int) -> Tile | None:
        """The part of this tile whose rows (axis=0) or columns (axis=1) have positions in
        ``start:stop``; None when that part is empty."""
        positions = self.row_positions if axis == 0 else self.col_positions
        first, last = np.searchsorted(positions, [start, stop])
        if first >= last:
            return None
        if first == 0 and last == len(positions):
            return self
        if axis == 0:
            return Tile(
                self.rows,
                self.cols,
                self.row_positions[first:last],
                self.col_positions,
                self.values[first:last],
                self.row_radii,
                self.col_radii,
            )
        return Tile(
            self.rows,
            self.cols,
            self.row_positions,
            self.col_positions[first:last],
            self.values[:, first:last],
            self.row_radii,
            self.col_radii,
        )

    def error_bounds(self, axis: int) -> np.ndarray:
        """Per row (axis=0) or column (axis=1): a bound on the float32 error of its entries."""
        coefficient = error_coefficient(self.rows.dim)
        row_norms = self.rows.norms[self.row_positions]
        col_norms = self.cols.norms[self.col_positions]
        if axis == 0:
            return coefficient * (row_norms + col_norms.max()) ** 2
        return coefficient * (row_norms.max() + col_norms) ** 2

    def inside_spheres(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``(row position, column position)`` pairs with ``d < radius``, the spheres being
        those of the rows (axis=0) or of the columns (axis=1). Strict, as in SPEC.md."""
        if axis in self._inside:
            return self._inside[axis]
        radii, positions, owner = (
            (self.row_radii, self.row_positions, self.rows)
            if axis == 0
            else (self.col_radii, self.col_positions, self.cols)
        )
        if radii is None:
            raise ValueError("this sweep has no radii for that side")
        squared = owner.to_frame_units(radii[positions] ** 2)
        bounds = self.error_bounds(axis)
        sure_below = f32_below(squared - bounds)
        maybe_below = f32_above(squared + bounds)
        i, j, value = self.rows.backend.pairs_below(self.values, maybe_below, axis)
        owner_index = i if axis == 0 else j
        undecided = np.flatnonzero(value >= sure_below[owner_index])
        inside = np.ones(len(i), dtype=bool)
        if len(undecided):
            exact = self.rows.exact_sqdist(
                self.row_positions[i[undecided]], self.cols, self.col_positions[j[undecided]]
            )
            # Compare distances, not squares, exactly as the float64 definition reads.
            inside[undecided] = np.sqrt(exact) < radii[positions[owner_index[undecided]]]
        pairs = (self.row_positions[i[inside]], self.col_positions[j[inside]])
        self._inside[axis] = pairs
        return pairs

    def smallest(
        self,
        count: int,
        axis: int,
        bound: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates ``(row position, column position, float32 value)`` holding the ``count``
        smallest of each column (axis=0) or row (axis=1), values times per-other-axis ``weights``."""
        i, j, value = self.rows.backend.smallest(self.values, count, axis, bound, weights)
        return self.row_positions[i], self.col_positions[j], value
