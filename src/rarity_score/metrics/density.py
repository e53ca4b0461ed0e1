"""Density (Naeem et al. 2020): ``(1 / (k M)) * sum over g of the number of real spheres holding
g``, from the sphere counts of :mod:`.sphere_counts`."""

from __future__ import annotations

import numpy as np

from rarity_score.metrics.base import Computed, Finished, Metric, SetValue, SweepContext
from rarity_score.metrics.sphere_counts import REAL_SPHERE_COUNTS, SPHERE_COUNT


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    return {"sphere_count": finished["sphere_count"]}, None


def _summarize(computed: Computed) -> float | None:
    counts = computed.columns.get("sphere_count")
    if counts is None:
        return None
    return float(np.asarray(counts).sum() / (computed.k * len(counts)))


DENSITY = Metric(
    name="density",
    description="mean number of real spheres holding a generated sample, divided by k",
    reducers=(REAL_SPHERE_COUNTS,),
    compute=_compute,
    columns=(SPHERE_COUNT,),
    values=(SetValue("density", "density", ("density",)),),
    summarize=_summarize,
)
