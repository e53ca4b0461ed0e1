"""How many real spheres hold each generated sample, and which real spheres hold any: the one
reducer density (Naeem et al. 2020) and coverage share."""

from __future__ import annotations

import numpy as np

from rarity_score.engine.sweep import NeverSettles
from rarity_score.engine.tiles import Tile
from rarity_score.metrics.base import Column, ReducerSpec, SweepContext


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

    def as_partial(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cols = np.flatnonzero(self.counts)
        return cols, self.counts[cols], np.flatnonzero(self.covered)


def _finish(reducer: RealSphereCounts, context: SweepContext) -> dict[str, np.ndarray]:
    # ``covered`` is by real position; its mean does not depend on the order.
    return {"sphere_count": reducer.counts, "real_sphere_covered": reducer.covered}


REAL_SPHERE_COUNTS = ReducerSpec(
    name="real_sphere_counts",
    make=lambda context: RealSphereCounts(len(context.real), len(context.fake)),
    finish=_finish,
)

#: Listed by density and coverage (written once when both are asked).
SPHERE_COUNT = Column(
    "sphere_count",
    "spheres holding it",
    "int",
    "number of real k-NN spheres holding the sample",
)
