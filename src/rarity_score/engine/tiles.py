"""One tile: float32 squared distances of a row block against a column block.

A :class:`Tile` holds float32 squared distances of a row block against a column block and answers,
exactly, the questions the metrics ask of it. Float32 entries far from a decision boundary decide
it; the few within the rounding bound of :func:`~rarity_score.engine.points.error_bound` (for the
precision the tile was computed in) are re-decided from float64 distances of the original
features, and counted (:class:`~rarity_score.engine.backend.SweepCounts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rarity_score.engine.points import PointSet


def f32_below(x: np.ndarray) -> np.ndarray:
    """The largest float32 values certainly below ``x`` (one float32 step under its rounding)."""
    return np.nextafter(np.asarray(x, dtype=np.float32), np.float32(-np.inf))


def f32_above(x: np.ndarray) -> np.ndarray:
    """The smallest float32 values certainly above ``x``."""
    return np.nextafter(np.asarray(x, dtype=np.float32), np.float32(np.inf))


@dataclass
class Tile:
    """Squared distances of ``row_positions`` of ``rows`` against ``col_positions`` of ``cols``.

    Positions index the sets in their visiting order. ``row_radii``/``col_radii`` are the exact k-NN
    radii of each set by position (original units), when the metrics need spheres of that side.
    ``values`` is stored as computed; a tile seen from the other side (``flipped``) swaps rows and
    columns in every answer without transposing the array, which numpy handles slowly.
    """

    rows: PointSet
    cols: PointSet
    row_positions: np.ndarray
    col_positions: np.ndarray
    values: Any  # backend float32 array in frame units, (rows x cols), or (cols x rows) if flipped
    row_radii: np.ndarray | None = None
    col_radii: np.ndarray | None = None
    flipped: bool = False
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
            self.values,
            self.col_radii,
            self.row_radii,
            not self.flipped,
        )

    def _stored_axis(self, axis: int) -> int:
        return 1 - axis if self.flipped else axis

    def _from_stored(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column positions of stored-array indices."""
        if self.flipped:
            i, j = j, i
        return self.row_positions[i], self.col_positions[j]

    def restricted(self, axis: int, start: int, stop: int) -> Tile | None:
        """The part of this tile whose rows (axis=0) or columns (axis=1) have positions in
        ``start:stop``; None when that part is empty."""
        positions = self.row_positions if axis == 0 else self.col_positions
        first, last = np.searchsorted(positions, [start, stop])
        if first >= last:
            return None
        if first == 0 and last == len(positions):
            return self
        part = slice(first, last)
        values = self.values[part] if self._stored_axis(axis) == 0 else self.values[:, part]
        row_positions, col_positions = self.row_positions, self.col_positions
        if axis == 0:
            row_positions = row_positions[part]
        else:
            col_positions = col_positions[part]
        return Tile(
            self.rows,
            self.cols,
            row_positions,
            col_positions,
            values,
            self.row_radii,
            self.col_radii,
            self.flipped,
        )

    def error_bounds(self, axis: int) -> np.ndarray:
        """Per row (axis=0) or column (axis=1): a bound on the error of its entries (in the
        precision of the sets' backend)."""
        row_norms = self.rows.norms[self.row_positions]
        col_norms = self.cols.norms[self.col_positions]
        if axis == 0:
            return self.rows.error_bound(row_norms + col_norms.max())
        return self.rows.error_bound(row_norms.max() + col_norms)

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
        stored_axis = self._stored_axis(axis)
        i, j, value = self.rows.backend.pairs_below(self.values, maybe_below, stored_axis)
        row, col = self._from_stored(i, j)
        owner_position = row if axis == 0 else col
        undecided = np.flatnonzero(value >= sure_below[i if stored_axis == 0 else j])
        inside = np.ones(len(row), dtype=bool)
        self.rows.backend.counts.band_entries += len(undecided)
        if len(undecided):
            exact = self.rows.exact_sqdist(row[undecided], self.cols, col[undecided])
            # Compare distances, not squares, exactly as the float64 definition reads.
            inside[undecided] = np.sqrt(exact) < radii[owner_position[undecided]]
        pairs = (row[inside], col[inside])
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
        smallest of each column (axis=0) or row (axis=1), values times per-other-axis ``weights``.
        ``bound`` (per column or row) lets the backend skip values that cannot matter."""
        i, j, value = self.rows.backend.smallest(
            self.values, count, self._stored_axis(axis), bound, weights
        )
        row, col = self._from_stored(i, j)
        return row, col, value
