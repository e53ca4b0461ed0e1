"""Improved recall (Kynkäänniemi et al. 2019): the fraction of real samples inside the manifold
built the same way from the generated samples (their own k-NN radii)."""

from __future__ import annotations

import numpy as np

from rarity_score.engine.sweep import NeverSettles
from rarity_score.engine.tiles import Tile
from rarity_score.metrics.base import Finished, Metric, ReducerSpec, SetValue, SweepContext


class FakeSphereHits(NeverSettles):
    """Which real samples lie inside some generated sample's k-NN sphere."""

    def __init__(self, n_real: int) -> None:
        self.inside = np.zeros(n_real, dtype=bool)

    def partial(self, tile: Tile) -> np.ndarray:
        rows, _ = tile.inside_spheres(axis=1)
        return np.unique(rows)

    def absorb(self, partial: np.ndarray) -> None:
        self.inside[partial] = True

    def as_partial(self) -> np.ndarray:
        return np.flatnonzero(self.inside)


FAKE_SPHERE_HITS = ReducerSpec(
    name="fake_sphere_hits",
    make=lambda context: FakeSphereHits(len(context.real)),
    finish=lambda reducer, context: {"real_in_fake_manifold": reducer.inside},
    needs_fake_radii=True,
)


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], float]:
    inside = finished.get("real_in_fake_manifold")
    # Without the generated samples' own radii (at most k of them) recall does not exist.
    return {}, float("nan") if inside is None else float(inside.mean())


RECALL = Metric(
    name="recall",
    description="fraction of real samples inside the generated samples' own k-NN spheres",
    reducers=(FAKE_SPHERE_HITS,),
    compute=_compute,
    values=(SetValue("recall", "recall", ("recall",), "fraction"),),
)
