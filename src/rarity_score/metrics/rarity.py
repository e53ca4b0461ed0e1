"""Rarity score (Han et al. 2023): the radius of the smallest real k-NN sphere containing a sample.

Real samples are visited in increasing radius, so the first sphere found to contain a generated
sample is its answer and that sample needs no further tiles; precision (in the manifold or not)
comes from the same search.
"""

from __future__ import annotations

import numpy as np

from rarity_score.engine.tiles import Tile


class SmallestSphere:
    """Per generated sample, the position (in radius order) of the first real sphere holding it."""

    def __init__(self, n_real: int, n_fake: int) -> None:
        self.n_real = n_real
        self.first = np.full(n_fake, n_real, dtype=np.int64)  # n_real: in no sphere yet

    def partial(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = tile.inside_spheres(axis=0)
        order = np.lexsort((rows, cols))
        cols, first = np.unique(cols[order], return_index=True)
        return cols, rows[order][first]

    def absorb(self, partial: tuple[np.ndarray, np.ndarray]) -> None:
        cols, rows = partial
        self.first[cols] = np.minimum(self.first[cols], rows)

    def settled(self, col_positions: np.ndarray) -> np.ndarray:
        # Later row blocks hold only larger (or equal, later-indexed) spheres.
        return self.first[col_positions] < self.n_real

    def result(
        self, sorted_radii: np.ndarray, real_order: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rarity, in_manifold, sphere_index)``: NaN and -1 outside the manifold."""
        inside = self.first < self.n_real
        rarity = np.full(len(self.first), np.nan)
        rarity[inside] = sorted_radii[self.first[inside]]
        sphere_index = np.full(len(self.first), -1, dtype=np.int64)
        sphere_index[inside] = real_order[self.first[inside]]
        return rarity, inside, sphere_index
