"""The sweep on a Dask cluster: units of work as tasks, their partials merged here.

A sweep's units (:func:`~rarity_score.engine.sweep.plan_units`: ranges of generated samples swept
over every real block with the early stop intact, or block pairs of a self-join) are independent,
so each task runs some of them with fresh copies of the reducers on a worker and returns their
states as partials (:meth:`Reducer.as_partial`); the client folds them in with the reducers'
associative ``absorb``, in whatever order tasks finish. The float64 re-decisions at the end
(:meth:`~rarity_score.engine.exact.Smallest.finalize`) run here as they do in one process, so
results are the same, bit for bit (tested).

Data: each feature array reaches each worker once per run, scattered with ``broadcast=True`` (a
read-only memory-mapped ``.npy`` goes as its path and is mapped by the workers, which must then
share the storage), never once per task; a task moves only its partials back. Dask reruns the
tasks of a worker that dies; nothing here retries.

Memory: the client holds the reducers' states (O((N + M) k)); a worker holds the arrays of the
sweep (real and generated features, or their mapped pages), float32 blocks up to the memory
budget, and one task's reducer states (O((N + M) k)).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import mmap
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rarity_score.engine.backend import Backend
from rarity_score.engine.local_sweep import plan_units, run_here
from rarity_score.engine.plan import plan_blocks
from rarity_score.engine.points import Frame, PointSet

logger = logging.getLogger(__name__)

__all__ = ["sweep_on_cluster"]

#: Tasks per worker a sweep is cut into at least (when its size allows): enough for Dask to even
#: out the load, and for a lost worker to cost a fraction of the run.
TASKS_PER_WORKER = 4
#: Narrowest column range a task of a plain sweep gets: narrower ones make thin GEMMs.
MIN_TASK_COLUMNS = 128
#: Rows of a memory-mapped file whose bytes the workers check against the client's, so that a
#: worker mapping another file at the same path is refused rather than used.
_CHECKED_ROWS = 16


def sweep_on_cluster(
    client: Any,
    rows: PointSet,
    cols: PointSet,
    reducers: Sequence[Any],
    edge: int,
    *,
    row_radii: np.ndarray | None,
    col_radii: np.ndarray | None,
    same_set: bool,
    symmetric: bool,
    progress: Callable[[int, int], None] | None,
) -> None:
    """:func:`~rarity_score.engine.sweep.sweep` on ``client``'s cluster (same arguments). The
    reducers must be as made (no state yet): each task starts from a copy of them."""
    from distributed import as_completed

    missing = [type(r).__name__ for r in reducers if not hasattr(r, "as_partial")]
    if missing:
        raise TypeError(
            f"reducer {missing[0]} has no as_partial(); it cannot run on a Dask cluster"
        )
    workers = _worker_count(client)
    tasks = _tasks(len(rows), len(cols), edge, workers, symmetric=symmetric)
    if symmetric:
        edge = tasks.edge
    rows_data = _ship_array(client, rows)
    cols_data = rows_data if cols is rows else _ship_array(client, cols)
    job = _Job(
        rows=_View.of(rows),
        cols=None if cols is rows else _View.of(cols),
        reducers=list(reducers),
        edge=edge,
        row_radii=row_radii,
        col_radii=col_radii,
        same_set=same_set,
        symmetric=symmetric,
    )
    [job_future] = client.scatter([job], broadcast=True, hash=False)
    futures = [
        client.submit(_run_units, job_future, rows_data, cols_data, units, pure=False)
        for units in tasks.groups
    ]
    logger.debug(
        "sweep of %d x %d on %d workers: %d tasks (edge %d)",
        len(rows),
        len(cols),
        workers,
        len(futures),
        edge,
    )
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            partials = future.result()
            future.release()
            for reducer, partial in zip(reducers, partials, strict=True):
                reducer.absorb(partial)
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.cancel(futures)
        job_future.release()


@dataclass(frozen=True)
class _Tasks:
    edge: int
    groups: list[list[tuple[int, int]]]


def _tasks(n_rows: int, n_cols: int, edge: int, workers: int, *, symmetric: bool) -> _Tasks:
    """The units of each task. A plain sweep: one column range per task, narrowed below ``edge``
    until there are :data:`TASKS_PER_WORKER` tasks per worker. A self-join: one block pair per
    task, the blocks narrowed until there are as many pairs."""
    wanted = TASKS_PER_WORKER * max(1, workers)
    if symmetric:
        # b (b + 1) / 2 pairs of b blocks: the smallest b that gives ``wanted`` pairs.
        blocks = math.ceil((math.sqrt(8 * wanted + 1) - 1) / 2)
        narrower = max(MIN_TASK_COLUMNS, math.ceil(n_rows / blocks))
        edge = min(edge, narrower)
        pairs = plan_units(n_rows, n_rows, edge, symmetric=True)
        return _Tasks(edge, [[pair] for pair in pairs])
    width = min(edge, max(MIN_TASK_COLUMNS, math.ceil(n_cols / wanted)))
    return _Tasks(edge, [[span] for span in plan_blocks(n_cols, width)])


def _worker_count(client: Any) -> int:
    from rarity_score.cluster import CONNECT_TIMEOUT_S

    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise ConnectionError(
            f"the Dask scheduler {client.scheduler.address} has no workers after "
            f"{CONNECT_TIMEOUT_S} s; start some (`dask worker ADDRESS`)"
        ) from None
    return len(client.scheduler_info().get("workers", {})) or 1


# ---------------------------------------------------------------------- what travels


@dataclass(frozen=True)
class _View:
    """A point set without its array: how the sweep visits it (small beside the array)."""

    backend: Backend
    frame: Frame
    order: np.ndarray
    norms: np.ndarray
    cache_bytes: int

    @classmethod
    def of(cls, points: PointSet) -> _View:
        return cls(points.backend, points.frame, points.order, points.norms, points.cache_bytes)

    def points(self, data: Any) -> PointSet:
        return PointSet(
            self.backend,
            self.backend.asarray(data),
            self.frame,
            self.order,
            self.norms,
            self.cache_bytes,
        )


@dataclass
class _Job:
    """What every task of one sweep shares, scattered once to every worker."""

    rows: _View
    cols: _View | None  # None: the columns are the rows
    reducers: list[Any]
    edge: int
    row_radii: np.ndarray | None
    col_radii: np.ndarray | None
    same_set: bool
    symmetric: bool
    # The point sets, made on a worker at its first task and kept for the others, with the
    # float32 blocks they cache.
    _points: dict[str, PointSet] = field(default_factory=dict, repr=False)

    def point_sets(self, rows_data: Any, cols_data: Any) -> tuple[PointSet, PointSet]:
        if "rows" not in self._points:
            self._points["rows"] = self.rows.points(_opened(rows_data))
        if self.cols is None:
            return self._points["rows"], self._points["rows"]
        if "cols" not in self._points:
            self._points["cols"] = self.cols.points(_opened(cols_data))
        return self._points["rows"], self._points["cols"]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_points"] = {}
        return state


def _run_units(job: _Job, rows_data: Any, cols_data: Any, units: list[tuple[int, int]]) -> list:
    """One task, on a worker: ``units`` of the sweep with fresh reducers; their partials."""
    rows, cols = job.point_sets(rows_data, cols_data)
    reducers = copy.deepcopy(job.reducers)
    run_here(
        rows,
        cols,
        reducers,
        job.edge,
        row_radii=job.row_radii,
        col_radii=job.col_radii,
        same_set=job.same_set,
        symmetric=job.symmetric,
        units=units,
    )
    return [reducer.as_partial() for reducer in reducers]


@dataclass(frozen=True)
class _MappedFile:
    """A read-only memory-mapped array sent as its file: mapped again on the worker."""

    path: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    fortran: bool
    digest: str

    def open(self) -> np.ndarray:
        try:
            array = np.memmap(
                self.path,
                mode="r",
                dtype=np.dtype(self.dtype),
                shape=self.shape,
                offset=self.offset,
                order="F" if self.fortran else "C",
            )
        except (OSError, ValueError) as error:
            raise FileNotFoundError(
                f"a Dask worker cannot map {self.path} ({error}); put feature files on storage "
                "every worker shares, or load them into memory before the run"
            ) from None
        if _rows_digest(array) != self.digest:
            raise ValueError(
                f"a Dask worker sees other content at {self.path} than this process; put feature "
                "files on storage every worker shares"
            )
        return array


def _opened(data: Any) -> Any:
    return data.open() if isinstance(data, _MappedFile) else data


def _rows_digest(array: np.ndarray) -> str:
    picks = np.linspace(0, array.shape[0] - 1, min(array.shape[0], _CHECKED_ROWS)).astype(int)
    digest = hashlib.sha256()
    for row in picks:
        digest.update(np.ascontiguousarray(array[row]).tobytes())
    return digest.hexdigest()


def _describe_map(array: np.ndarray) -> _MappedFile | None:
    """The file behind a read-only memory map of a whole file region, or None for any other
    array (a view into a map, a writable map, an in-memory array)."""
    if not isinstance(array, np.memmap) or array.filename is None or array.base is None:
        return None
    if array.flags.writeable or not (array.flags.c_contiguous or array.flags.f_contiguous):
        return None
    offset = getattr(array, "offset", None)
    base = array.base
    # A slice of a map is a memmap too, but its offset is the parent's: only the map itself.
    if not isinstance(offset, int) or not isinstance(base, mmap.mmap):
        return None
    return _MappedFile(
        path=str(array.filename),
        offset=offset,
        shape=tuple(int(n) for n in array.shape),
        dtype=array.dtype.str,
        fortran=bool(array.flags.f_contiguous and not array.flags.c_contiguous),
        digest=_rows_digest(array),
    )


#: Per client: the arrays already scattered in this run, by ``id``, with a weak reference that
#: tells a reused ``id`` from the same array.
_SHIPPED: weakref.WeakKeyDictionary[Any, dict[int, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


def _ship_array(client: Any, points: PointSet) -> Any:
    """A future of ``points.data`` on every worker (scattered once per array and client)."""
    data = points.data
    shipped = _SHIPPED.setdefault(client, {})
    known = shipped.get(id(data))
    if known is not None and known[0]() is data:
        return known[1]
    mapped = _describe_map(data) if isinstance(data, np.ndarray) else None
    payload: Any = mapped if mapped is not None else points.backend.to_numpy(data)
    [future] = client.scatter([payload], broadcast=True, hash=False)
    try:
        reference = weakref.ref(data)
    except TypeError:  # an object without weak references: not reused
        return future
    shipped[id(data)] = (reference, future)
    weakref.finalize(data, shipped.pop, id(data), None)
    return future
