"""The nearest real sample of each generated sample, and its distance."""

from __future__ import annotations

import numpy as np

from rarity_score.engine.exact import EXTRA_CANDIDATES, Smallest
from rarity_score.engine.points import PointSet


class NearestReal(Smallest):
    """Per generated sample (column), the closest real sample (row); ties to the smallest index."""

    def __init__(self, n_fake: int) -> None:
        super().__init__(n_fake, 1 + EXTRA_CANDIDATES, axis=0)

    def result(self, real: PointSet, fake: PointSet) -> tuple[np.ndarray, np.ndarray]:
        """``(nearest_real_index, nearest_real_distance)``, indices into the real input rows."""
        squared, position = self.finalize(fake, real, 1, need_index=True)
        return real.order[position], np.sqrt(squared) / real.frame.scale
