"""The nearest real sample of each generated sample, and its distance (ties to the smallest index).

Its reducer is shared: authenticity reads the same nearest real sample.
"""

from __future__ import annotations

import numpy as np

from rarity_score.engine.exact import Smallest, extra_candidates
from rarity_score.engine.points import PointSet
from rarity_score.metrics.base import Column, Finished, Metric, ReducerSpec, SweepContext


class NearestReal(Smallest):
    """Per generated sample (column), the closest real sample (row); ties to the smallest index."""

    def __init__(self, n_fake: int, precision: str = "float32") -> None:
        # A wider error bound (tensor-core tiles) holds more near-ties: more candidates.
        super().__init__(n_fake, 1 + extra_candidates(precision), axis=0)

    def result(self, real: PointSet, fake: PointSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(nearest_real_index, nearest_real_position, nearest_real_distance)``: input rows of
        the real set, positions in the sweep, exact float64 distances in original units."""
        squared, position = self.finalize(fake, real, 1, need_index=True)
        return real.order[position], position, np.sqrt(squared) / real.frame.scale


def _finish(reducer: NearestReal, context: SweepContext) -> dict[str, np.ndarray]:
    index, position, distance = reducer.result(context.real, context.fake)
    return {
        "nearest_real_index": index,
        "nearest_real_position": position,
        "nearest_real_distance": distance,
    }


#: The nearest real sample: nearest's and authenticity's reducer.
NEAREST_REAL = ReducerSpec(
    name="nearest_real",
    make=lambda context: NearestReal(len(context.fake), context.real.precision),
    finish=_finish,
)

NEAREST_REAL_INDEX = Column(
    "nearest_real_index",
    "nearest real",
    "index",
    "the real sample closest to the sample (ties to the smallest index)",
    names_column="nearest_real_name",
)
NEAREST_REAL_DISTANCE = Column(
    "nearest_real_distance",
    "nearest distance",
    "float",
    "distance to the nearest real sample",
)


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    names = ("nearest_real_index", "nearest_real_distance")
    return {name: finished[name] for name in names}, None


NEAREST = Metric(
    name="nearest",
    description="the nearest real sample of each generated sample, and its distance",
    reducers=(NEAREST_REAL,),
    compute=_compute,
    columns=(NEAREST_REAL_INDEX, NEAREST_REAL_DISTANCE),
    # The per-sample table has listed the nearest real sample before realism since it exists.
    columns_before="realism",
)
