"""Rarity score (Han et al. 2023): the radius of the smallest real k-NN sphere containing a sample.

Real samples are visited in increasing radius, so the first sphere found to contain a generated
sample is its answer and that sample needs no further tiles; precision (in the manifold or not)
comes from the same search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rarity_score.engine.tiles import Tile
from rarity_score.metrics.base import (
    Column,
    Computed,
    Finished,
    Metric,
    ReducerSpec,
    Section,
    SetValue,
    SweepContext,
    format_value,
    quantile_name,
    scalar,
)


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

    def as_partial(self) -> tuple[np.ndarray, np.ndarray]:
        cols = np.flatnonzero(self.first < self.n_real)
        return cols, self.first[cols]

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


def _finish(reducer: SmallestSphere, context: SweepContext) -> dict[str, np.ndarray]:
    rarity, in_manifold, sphere_index = reducer.result(context.sorted_radii, context.real.order)
    return {"rarity": rarity, "in_manifold": in_manifold, "sphere_index": sphere_index}


#: The smallest-sphere search: rarity's and precision's reducer.
SMALLEST_SPHERE = ReducerSpec(
    name="smallest_sphere",
    make=lambda context: SmallestSphere(len(context.real), len(context.fake)),
    finish=_finish,
)

#: Every output's in-manifold flag (precision is its mean).
IN_MANIFOLD = Column(
    "in_manifold",
    "in manifold",
    "bool",
    "whether the sample lies inside some real k-NN sphere (out of the manifold: no rarity score)",
    always_written=True,
)


def statistics(scores: np.ndarray, quantiles: Sequence[float]) -> dict[str, Any]:
    """n, mean, std (population), min, max, median and the quantiles of ``scores``; None for
    each statistic of an empty set."""
    empty = scores.size == 0
    stats: dict[str, Any] = {"n": int(scores.size)}
    for key, statistic in (
        ("mean", np.mean),
        ("std", np.std),
        ("min", np.min),
        ("max", np.max),
        ("median", np.median),
    ):
        stats[key] = None if empty else scalar(statistic(scores))
    # One call for all quantiles: one sort, where each bootstrap resample recomputes them.
    values = np.quantile(scores, list(quantiles)) if not empty and quantiles else []
    for i, q in enumerate(quantiles):
        stats[quantile_name(q)] = None if empty else scalar(values[i])
    return stats


def _compute(finished: Finished, context: SweepContext) -> tuple[dict[str, np.ndarray], None]:
    names = ("in_manifold", "rarity", "sphere_index")
    return {name: finished[name] for name in names}, None


def _summarize(computed: Computed) -> dict[str, Any] | None:
    columns: Mapping[str, np.ndarray] = computed.columns
    if "rarity" not in columns:
        return None
    inside = np.asarray(columns["in_manifold"], dtype=bool)
    scores = np.asarray(columns["rarity"], dtype=np.float64)[inside]
    return statistics(scores, computed.quantiles)


def _section(entry: Mapping[str, Any]) -> Section:
    title = f"Rarity score (over the {entry['n']} in-manifold samples)"
    if entry["n"] == 0:
        return title, [("(none)", "no generated sample lies in the real manifold")]
    quantiles = [key for key in entry if key.startswith("q") and key != "q50"]
    low = [key for key in quantiles if float(key[1:]) < 50]
    high = [key for key in quantiles if float(key[1:]) > 50]
    keys = ["mean", "std", "min", *low, "median", *high, "max"]
    return title, [(key, format_value(entry[key])) for key in keys]


def _rarity_value(statistic: str, heading: str) -> SetValue:
    return SetValue(f"rarity_{statistic}", heading, ("rarity", statistic), in_text=False)


RARITY = Metric(
    name="rarity",
    description="radius of the smallest real k-NN sphere holding the sample (Han et al. 2023)",
    reducers=(SMALLEST_SPHERE,),
    compute=_compute,
    columns=(
        IN_MANIFOLD,
        Column(
            "rarity",
            "rarity",
            "float",
            "radius of the smallest real k-NN sphere holding the sample; empty out of the manifold",
            only_in_manifold=True,
        ),
        Column(
            "sphere_index",
            "sphere (score from)",
            "index",
            "real sample whose sphere gave the score",
            only_in_manifold=True,
            names_column="sphere_name",
        ),
    ),
    values=(
        _rarity_value("mean", "mean"),
        _rarity_value("median", "median"),
        _rarity_value("q10", "q10"),
        _rarity_value("q90", "q90"),
    ),
    summarize=_summarize,
    section=_section,
    in_leave_one_out=True,
    always=True,
)
