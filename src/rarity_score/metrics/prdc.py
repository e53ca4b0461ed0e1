"""Improved precision / recall (Kynkäänniemi et al. 2019), density / coverage (Naeem et al. 2020).

Precision is the fraction of generated samples in the real manifold (from :mod:`.rarity`).
Density counts the real spheres holding each generated sample; coverage is the fraction of real
samples whose own sphere holds a generated sample (equivalently: whose nearest generated sample is
inside it). Recall is the fraction of real samples inside the generated manifold, built the same way
from the generated samples' own k-NN radii.
"""

from __future__ import annotations

import numpy as np

from rarity_score.engine.sweep import NeverSettles
from rarity_score.engine.tiles import Tile


class RealSphereCounts(NeverSettles):
    """How many real spheres hold each generated sample; which real spheres hold any."""

    def __init__(self, n_real: int, n_fake: int) -> None:
        self.counts = np.zeros(n_fake, dtype=np.int64)
        self.covered = np.zeros(n_real, dtype=bool)

    def partial(self, tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, cols = tile.inside_spheres(axis=0)
        cols, counts = np.unique(cols, return_counts=True)
        return cols, counts, np.unique(rows)

    def absorb(self, partial: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        cols, counts, rows = partial
        self.counts[cols] += counts
        self.covered[rows] = True

    def density(self, k: int) -> float:
        return float(self.counts.sum() / (k * len(self.counts)))

    def coverage(self) -> float:
        return float(self.covered.mean())


class FakeSphereHits(NeverSettles):
    """Which real samples lie inside some generated sample's k-NN sphere (for recall)."""

    def __init__(self, n_real: int) -> None:
        self.inside = np.zeros(n_real, dtype=bool)

    def partial(self, tile: Tile) -> np.ndarray:
        rows, _ = tile.inside_spheres(axis=1)
        return np.unique(rows)

    def absorb(self, partial: np.ndarray) -> None:
        self.inside[partial] = True

    def recall(self) -> float:
        return float(self.inside.mean())
