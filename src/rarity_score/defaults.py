"""The one table of defaults shared by the Python API and the command line."""

from __future__ import annotations

#: Neighbourhood size of the k-NN spheres (the paper and the official code use 3).
K: int = 3

#: Memory, in bytes, that one tile of the sweep may use (distance block plus its masks).
#: Tiles are sized from it; results never depend on it.
MEMORY_BUDGET: int = 256 * 2**20

#: Array library that runs the sweep: "auto" picks torch for torch tensors, numpy otherwise.
BACKEND: str = "auto"

#: Quantiles reported in summaries, over in-manifold samples.
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)

#: Every metric `evaluate` can compute; the default computes all of them.
METRICS: tuple[str, ...] = (
    "rarity",
    "precision",
    "recall",
    "density",
    "coverage",
    "realism",
    "nearest",
)
