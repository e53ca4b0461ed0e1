"""The sweep on a Dask cluster: units of work as tasks, their partials merged here.

A sweep's units (:func:`~rarity_score.engine.sweep.plan_units`: ranges of generated samples swept
over every real block with the early stop intact, or block pairs of a self-join) are independent,
so each task runs some of them with fresh copies of the reducers on a worker and returns their
states as partials (:meth:`Reducer.as_partial`); the client folds them in with the reducers'
associative ``absorb``, in whatever order tasks finish. The float64 re-decisions at the end
(:meth:`~rarity_score.engine.exact.Smallest.finalize`) run here as they do in one process, so
results are the same, bit for bit (tested).

Data: each feature array reaches each worker once per evaluation, scattered with
``broadcast=True``, never once per task; a read-only memory-mapped ``.npy`` goes as its path and
is mapped by each worker (which must then share the storage). A task moves only its partials
back. Dask reruns the tasks of a worker that dies; nothing here retries. What no worker can rebuild
is a scattered array whose every copy died (Dask's memory manager keeps one copy once no task
waits for it): that run fails with one line; memory-mapped files and the clusters that
:mod:`rarity_score.cluster` makes (which keep every copy) do not have that failure.

Memory: the client holds the reducers' states (O((N + M) k)); a worker holds the arrays of the
sweep (real and generated features, or their mapped pages), float32 blocks up to the memory
budget, and one task's reducer states (O((N + M) k)).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rarity_score import cluster
from rarity_score.engine.backend import Backend
from rarity_score.engine.local_sweep import plan_units, run_here
from rarity_score.engine.plan import plan_blocks
from rarity_score.engine.points import Frame, PointSet
from rarity_score.io.features import FileIdentity, file_identity, mapped_identity

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

    _check_fresh(reducers)
    workers = _worker_count(client)
    tasks = _tasks(len(rows), len(cols), edge, workers, symmetric=symmetric)
    if symmetric:
        edge = tasks.edge
    rows_data = _ship_array(client, rows)
    cols_data = rows_data if cols is rows else _ship_array(client, cols)
    job = _Job(
        rows=_View.of(rows),
        cols=None if cols is rows else _View.of(cols),
        # A copy: a cluster in this process (processes=False) hands tasks this very object, whose
        # reducers must stay as made while the client's own ones absorb the partials.
        reducers=copy.deepcopy(list(reducers)),
        edge=edge,
        row_radii=row_radii,
        col_radii=col_radii,
        same_set=same_set,
        symmetric=symmetric,
    )
    job_future = cluster.keep(client, job, prefix="sweep-job")
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
            partials = _result(future)
            future.release()
            for reducer, partial in zip(reducers, partials, strict=True):
                reducer.absorb(partial)
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.cancel(futures)
        job_future.release()


def _check_fresh(reducers: Sequence[Any]) -> None:
    """Every reducer can run on a cluster and holds nothing yet (each task starts from a copy, so
    a state held would be counted once per task)."""
    for reducer in reducers:
        if not hasattr(reducer, "as_partial"):
            raise TypeError(
                f"reducer {type(reducer).__name__} has no as_partial(); it cannot run on a Dask "
                "cluster"
            )
        if not _is_empty(reducer.as_partial()):
            raise ValueError(
                f"reducer {type(reducer).__name__} already holds a state; a cluster sweep needs "
                "reducers as made"
            )


def _is_empty(partial: Any) -> bool:
    if isinstance(partial, tuple | list):
        return all(_is_empty(part) for part in partial)
    return int(np.size(partial)) == 0


def _result(future: Any) -> Any:
    """A task's result; the loss of data the cluster cannot rebuild (every worker holding the
    scattered features died) becomes one line, a failure of the machine, not of the input."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        return future.result()
    except (CancelledError, KilledWorker, CommClosedError) as error:
        raise RuntimeError(
            f"the Dask cluster lost a sweep task or the features it needs "
            f"({type(error).__name__}); rerun, or give the features as .npy files on storage "
            "every worker shares, which any worker maps again"
        ) from None


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

    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def point_sets(self, rows_data: Any, cols_data: Any) -> tuple[PointSet, PointSet]:
        with self._lock:  # the threads of one worker share the job
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
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


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
    """A read-only memory-mapped array sent as its file, mapped again on each worker: the file's
    identity and the bytes of sampled rows must match what this process maps."""

    path: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    fortran: bool
    identity: FileIdentity
    digest: str

    def open(self) -> np.ndarray:
        other = (
            f"a Dask worker sees another file at {self.path} than this process; put feature "
            "files on storage every worker shares, and do not replace them during a run"
        )
        try:
            identity = file_identity(os.stat(self.path))
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
        if identity != self.identity or _rows_digest(array) != self.digest:
            raise ValueError(other)
        return array


def _opened(data: Any) -> Any:
    return data.open() if isinstance(data, _MappedFile) else data


def _rows_digest(array: np.ndarray) -> str:
    picks = np.linspace(0, array.shape[0] - 1, min(array.shape[0], _CHECKED_ROWS)).astype(int)
    digest = hashlib.sha256()
    for row in picks:
        digest.update(np.ascontiguousarray(array[row]).tobytes())
    return digest.hexdigest()


def _file_map(array: Any) -> np.memmap | None:
    """The read-only ``np.memmap`` that ``array`` is exactly (itself, or a plain-array view of
    the whole of it, as ``np.asarray`` makes), or None."""
    # The map itself is the array whose base is the mmap object; views of it (a slice of a
    # memmap is a memmap too, with its parent's offset) lead back to it through their bases.
    found = array
    while isinstance(found, np.ndarray) and isinstance(found.base, np.ndarray):
        found = found.base
    if not isinstance(found, np.memmap) or found.filename is None:
        return None
    same = (
        isinstance(array, np.ndarray)
        and array.shape == found.shape
        and array.dtype == found.dtype
        and array.strides == found.strides
        and array.__array_interface__["data"][0] == found.__array_interface__["data"][0]
    )
    if not same or array.flags.writeable or found.flags.writeable:
        return None
    if not (found.flags.c_contiguous or found.flags.f_contiguous):
        return None
    return found


def _describe_map(array: Any) -> _MappedFile | None:
    """The file behind a read-only memory map of a whole array in a file made by
    :func:`~rarity_score.io.features.load_features`, while that file is still at its path; None
    for any other array (a view of part of a map, a map made elsewhere, whose file is not known
    to be the one at its path, an array in memory), which is then scattered."""
    mapped = _file_map(array)
    if mapped is None:
        return None
    path = str(mapped.filename)
    identity = mapped_identity(mapped)
    try:
        if identity is None or file_identity(os.stat(path)) != identity:
            return None  # another file was renamed over the path: send what is mapped here
    except OSError:
        return None
    # np.memmap's offset is where the array starts in the file; a slice of a map keeps its
    # parent's, which the checks above rule out (a slice is not the whole map).
    return _MappedFile(
        path=path,
        offset=int(mapped.offset),
        shape=tuple(int(n) for n in mapped.shape),
        dtype=mapped.dtype.str,
        fortran=bool(mapped.flags.f_contiguous and not mapped.flags.c_contiguous),
        identity=identity,
        digest=_rows_digest(mapped),
    )


def _ship_array(client: Any, points: PointSet) -> Any:
    """What a task needs to find ``points.data`` on its worker: the file of a read-only memory map
    (mapped by each worker itself, so that no worker's loss can lose it), or a future of the
    array scattered to every worker, once per client for the point sets that share
    ``points.shipped`` (those made from one array in one evaluation)."""
    mapped = _describe_map(points.data)
    if mapped is not None:
        return mapped
    known = points.shipped.get(client.id)
    if known is not None and known.status == "finished":
        return known
    [future] = client.scatter([points.backend.to_numpy(points.data)], broadcast=True, hash=False)
    points.shipped[client.id] = future
    return future
