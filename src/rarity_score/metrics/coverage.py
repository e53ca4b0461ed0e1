"""Coverage (Naeem et al. 2020): the fraction of real samples whose own sphere holds a generated
sample (equivalently: whose nearest generated sample is inside it), from :mod:`.sphere_counts`."""

from __future__ import annotations

import numpy as np

from rarity_score.metrics.base import Finished, Metric, SetValue, SweepContext
from rarity_score.metrics.sphere_counts import REAL_SPHERE_COUNTS, SPHERE_COUNT


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], float]:
    # A fact about the real samples, which no per-sample array of the generated set holds.
    return {"sphere_count": finished["sphere_count"]}, float(finished["real_sphere_covered"].mean())


COVERAGE = Metric(
    name="coverage",
    description="fraction of real samples whose k-NN sphere holds a generated sample",
    reducers=(REAL_SPHERE_COUNTS,),
    compute=_compute,
    columns=(SPHERE_COUNT,),
    values=(SetValue("coverage", "coverage", ("coverage",), "fraction"),),
)
