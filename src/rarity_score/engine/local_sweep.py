"""The sweep in this process: the units of a sweep and the loop that runs some of them.

:func:`rarity_score.engine.sweep.sweep` runs all units here, or sends them to a Dask cluster
(:mod:`~rarity_score.engine.distributed`), whose tasks run their units with :func:`run_here`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score.engine.backend import Backend
from rarity_score.engine.plan import plan_blocks
from rarity_score.engine.points import PointSet
from rarity_score.engine.tiles import Tile

if TYPE_CHECKING:
    from rarity_score.engine.sweep import Reducer

logger = logging.getLogger(__name__)

#: One unit of a sweep's work: a range of column positions swept over every row block (a plain
#: sweep), or a pair of block numbers ``(i, j)``, ``i <= j`` (a symmetric one). Units are
#: independent: any subset, in any order, on any worker, gives partials that merge into the same
#: state (:mod:`~rarity_score.engine.distributed` sends them to a Dask cluster).
Unit = tuple[int, int]


def plan_units(n_rows: int, n_cols: int, edge: int, *, symmetric: bool = False) -> list[Unit]:
    """The units of a whole sweep, in the order a single process runs them: column blocks of
    ``edge``, or (symmetric) the diagonal block pairs first, then those above it."""
    if symmetric:
        count = len(plan_blocks(n_rows, edge))
        pairs = [(i, i) for i in range(count)]
        return pairs + [(i, j) for i in range(count) for j in range(i + 1, count)]
    return plan_blocks(n_cols, edge)


def run_here(
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
    units: Sequence[Unit] | None = None,
) -> None:
    """:func:`sweep` in this process. ``units``: only these units of :func:`plan_units`
    (default: all; column ranges of at most ``edge`` columns need not be the planned ones).
    """
    if symmetric and not same_set:
        raise ValueError("a symmetric sweep needs rows and columns to be the same set")
    if units is None:
        units = plan_units(len(rows), len(cols), edge, symmetric=symmetric)
    row_blocks = plan_blocks(len(rows), edge)
    if symmetric:
        _symmetric_sweep(rows, reducers, row_blocks, units, row_radii, progress)
        return
    backend = rows.backend
    total = len(units) * len(row_blocks)
    done = 0
    for col_index, (col_start, col_stop) in enumerate(units):
        active = np.arange(col_start, col_stop)
        col_block = cols.block(col_start, col_stop)
        for row_index, (row_start, row_stop) in enumerate(row_blocks):
            # Stored column-major (columns as the array's rows): the per-column selections of the
            # metrics then run along contiguous memory.
            values = backend.sqdist_tile(
                col_block,
                rows.block(row_start, row_stop),
                cols.norms[active] ** 2,
                rows.norms[row_start:row_stop] ** 2,
            )
            row_positions = np.arange(row_start, row_stop)
            if same_set:
                _mask_self_pairs(backend, values, active, row_positions)
            tile = Tile(rows, cols, row_positions, active, values, row_radii, col_radii, True)
            _feed(reducers, tile)
            done += 1
            if progress is not None:
                progress(done, total)
            settled = np.ones(len(active), dtype=bool)
            for reducer in reducers:
                settled &= reducer.settled(active)
            if settled.any():
                keep = np.flatnonzero(~settled)
                active = active[keep]
                col_block = backend.take_rows(col_block, keep)
                if len(active) == 0:
                    logger.debug("column block %d settled after row block %d", col_index, row_index)
                    break


def _symmetric_sweep(
    points: PointSet,
    reducers: Sequence[Reducer],
    blocks: list[tuple[int, int]],
    pairs: Sequence[Unit],
    radii: np.ndarray | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Tiles on and above the diagonal of a self-join, each fed both ways. Diagonal tiles come
    first, so every row has met some columns before it is first seen as a column."""
    ordered = sorted(pairs, key=lambda pair: pair[0] != pair[1])  # stable: diagonal first
    for done, (i, j) in enumerate(ordered, start=1):
        (row_start, row_stop), (col_start, col_stop) = blocks[i], blocks[j]
        values = points.backend.sqdist_tile(
            points.block(row_start, row_stop),
            points.block(col_start, col_stop),
            points.norms[row_start:row_stop] ** 2,
            points.norms[col_start:col_stop] ** 2,
        )
        row_positions, col_positions = (
            np.arange(row_start, row_stop),
            np.arange(col_start, col_stop),
        )
        if i == j:
            _mask_self_pairs(points.backend, values, row_positions, col_positions)
        tile = Tile(points, points, row_positions, col_positions, values, radii, radii)
        _feed(reducers, tile)
        if i != j:
            _feed(reducers, tile.transposed())
        if progress is not None:
            progress(done, len(ordered))


def _mask_self_pairs(
    backend: Backend, values: Any, stored_rows: np.ndarray, stored_cols: np.ndarray
) -> None:
    """+inf where a stored row and a stored column are the same point (positions of one set):
    never its own neighbour, never inside its own sphere."""
    _, rows, cols = np.intersect1d(
        stored_rows, stored_cols, assume_unique=True, return_indices=True
    )
    if len(rows):
        backend.mask_entries(values, rows, cols)


def _feed(reducers: Sequence[Reducer], tile: Tile) -> None:
    for reducer in reducers:
        reducer.absorb(reducer.partial(tile))
