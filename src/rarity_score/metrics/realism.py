"""Realism score (Kynkäänniemi et al. 2019): ``max over r of rad_k(r) / d(r, g)``.

Only real spheres with radius at most the median radius take part (their paper prunes the larger
half, which are likely outliers). Choices, tested: plain distances (the official code divides
squared distances, giving the square of this score); a sphere of radius 0 is empty and takes no
part; a sample at distance 0 from a taking-part centre scores +inf; with no taking-part sphere the
score is 0. The search minimises ``d^2 / rad^2``, which shares the maximiser.
"""

from __future__ import annotations

import math

import numpy as np

from rarity_score.engine.exact import Smallest, extra_candidates
from rarity_score.engine.points import PointSet
from rarity_score.metrics.base import (
    Column,
    Computed,
    Finished,
    Metric,
    ReducerSpec,
    SetValue,
    SweepContext,
    scalar,
)


def participating(sorted_radii: np.ndarray) -> tuple[int, int]:
    """Positions (in increasing radius order) of the taking-part spheres: 0 < radius <= median."""
    start = int(np.searchsorted(sorted_radii, 0.0, side="right"))
    stop = int(np.searchsorted(sorted_radii, np.median(sorted_radii), side="right"))
    return start, max(start, stop)


class Realism(Smallest):
    """Per generated sample (column), the smallest ``d^2 / rad^2`` over taking-part real spheres."""

    def __init__(self, n_fake: int, real: PointSet, sorted_radii: np.ndarray) -> None:
        self.taking_part = participating(sorted_radii)
        start, stop = self.taking_part
        weights = np.zeros(len(sorted_radii))
        weights[start:stop] = 1.0 / real.to_frame_units(sorted_radii[start:stop] ** 2)
        # Scaled by a power of two (exact) so the largest weight is 1: 1 / rad^2 of tiny spheres
        # would overflow the float32 products.
        self.weight_scale = 2.0 ** -math.ceil(math.log2(weights.max())) if stop > start else 1.0
        weights *= self.weight_scale
        super().__init__(
            n_fake,
            1 + extra_candidates(real.precision),
            axis=0,
            weights=weights,
            refs_in=(start, stop),
        )

    def result(self, real: PointSet, fake: PointSet) -> np.ndarray:
        start, stop = self.taking_part
        if start == stop:
            return np.zeros(len(self.values))
        scaled_ratio, _ = self.finalize(fake, real, 1)
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(scaled_ratio / self.weight_scale)


REALISM_SEARCH = ReducerSpec(
    name="realism",
    make=lambda context: Realism(len(context.fake), context.real, context.sorted_radii),
    finish=lambda reducer, context: {"realism": reducer.result(context.real, context.fake)},
)


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    return {"realism": finished["realism"]}, None


def _summarize(computed: Computed) -> dict[str, object] | None:
    if "realism" not in computed.columns:
        return None
    realism = np.asarray(computed.columns["realism"], dtype=np.float64)
    finite = realism[np.isfinite(realism)]
    return {
        "n_finite": int(finite.size),
        "n_infinite": int(np.isposinf(realism).sum()),
        "mean": scalar(finite.mean()) if finite.size else None,
        "median": scalar(np.median(finite)) if finite.size else None,
    }


REALISM = Metric(
    name="realism",
    description="max over the smaller half of the real spheres of radius / distance",
    reducers=(REALISM_SEARCH,),
    compute=_compute,
    columns=(
        Column(
            "realism",
            "realism",
            "float",
            "realism score: max of rad_k(r) / d(r, g) over real spheres up to the median radius",
            may_be_infinite=True,
        ),
    ),
    # Printed in the summary of one set only: neither the summary files nor the table comparing
    # sets have held realism.
    values=(
        SetValue("realism_mean", "realism mean", ("realism", "mean"), in_table=False, in_row=False),
        SetValue(
            "realism_median", "realism median", ("realism", "median"), in_table=False, in_row=False
        ),
        SetValue(
            "realism_infinite",
            "realism infinite",
            ("realism", "n_infinite"),
            "count",
            text_when_zero=False,
            in_table=False,
            in_row=False,
        ),
    ),
    summarize=_summarize,
)
