"""The tile sweep: every tile of (rows x columns) is computed once and handed to every reducer.

A reducer keeps what it needs from a tile (:meth:`Reducer.partial`, a pure function of the tile)
and folds it into its state (:meth:`Reducer.absorb`, associative), so tiles could be computed in any
order or on other workers. No metric knows how tiles are made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from rarity_score import cluster
from rarity_score.engine.local_sweep import Unit, plan_units, run_here
from rarity_score.engine.points import PointSet
from rarity_score.engine.tiles import Tile

__all__ = ["NeverSettles", "Reducer", "Unit", "plan_units", "run_here", "sweep"]


class Reducer(Protocol):
    """What the sweep asks of a metric."""

    def partial(self, tile: Tile) -> Any:
        """What this metric keeps from one tile (pure: no state is touched)."""

    def absorb(self, partial: Any) -> None:
        """Fold a tile's partial result into the state (associative, order-free)."""

    def settled(self, col_positions: np.ndarray) -> np.ndarray:
        """Which of these columns no later row block can change (rows are visited in position
        order); the sweep stops computing a column once every reducer has settled it."""

    def as_partial(self) -> Any:
        """The whole state as one partial: absorbing it into a fresh reducer gives this state.
        How the work of a cluster task comes back to be merged (:mod:`~.distributed`)."""


def sweep(
    rows: PointSet,
    cols: PointSet,
    reducers: Sequence[Reducer],
    edge: int,
    *,
    row_radii: np.ndarray | None = None,
    col_radii: np.ndarray | None = None,
    same_set: bool = False,
    symmetric: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``reducers`` over all tiles of ``rows`` x ``cols``: in this process, or, inside a
    :func:`rarity_score.cluster.use` block, as tasks on that Dask cluster (same results, bit for
    bit; the reducers must then be as made, with no state yet).

    ``same_set``: rows and columns are one set; self pairs get distance +inf (never a neighbour,
    never inside their own sphere). ``symmetric`` (with ``same_set``): only tiles on and above the
    diagonal are computed, each also fed transposed, which halves the GEMM work of a self-join.
    ``progress(done, total)`` is called per tile here, per task on a cluster.
    """
    run: Callable[..., None] = run_here
    if cluster.active():
        from rarity_score.engine.distributed import sweep_on_cluster

        run = functools.partial(sweep_on_cluster, cluster.current())
    run(
        rows,
        cols,
        reducers,
        edge,
        row_radii=row_radii,
        col_radii=col_radii,
        same_set=same_set,
        symmetric=symmetric,
        progress=progress,
    )


class NeverSettles:
    """Mixin for reducers that need every tile."""

    def settled(self, col_positions: np.ndarray) -> np.ndarray:
        return np.zeros(len(col_positions), dtype=bool)
