"""Improved precision (Kynkäänniemi et al. 2019): the fraction of generated samples inside the real
manifold, read from the smallest-sphere search of :mod:`.rarity` (no reducer of its own)."""

from __future__ import annotations

import numpy as np

from rarity_score.metrics.base import Computed, Finished, Metric, SetValue, SweepContext
from rarity_score.metrics.rarity import SMALLEST_SPHERE


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    return {}, None  # derived from in_manifold, which rarity always computes


def _summarize(computed: Computed) -> float:
    return float(np.asarray(computed.columns["in_manifold"], dtype=bool).mean())


PRECISION = Metric(
    name="precision",
    description="fraction of the generated samples inside the real manifold",
    reducers=(SMALLEST_SPHERE,),
    compute=_compute,
    values=(SetValue("precision", "precision", ("precision",), "fraction"),),
    summarize=_summarize,
)
