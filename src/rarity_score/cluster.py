"""Where the work runs: in this process, or on a Dask cluster (``distributed``).

``with rarity_score.cluster.use(client):`` (a ``distributed.Client``), or ``use("local:4")`` /
``use("tcp://host:8786")``, sends every k-NN sweep and every image extraction inside the block to
that cluster; results are the same, bit for bit (tested). The command line's ``--dask`` does the
same for one run. Outside such a block nothing changes and ``dask`` is never imported: it is an
optional extra, ``pip install 'rarity-score[dask]'``.

A cluster named by text is made (``local[:N]``: a ``LocalCluster`` of N worker processes, one
thread each) or reached (an address) when the first sweep or extraction asks for it, so that bad
input is refused before any cluster starts, and it is closed when the block ends.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from rarity_score._errors import require

__all__ = ["ClusterSpec", "current", "keep", "parse", "use"]

logger = logging.getLogger(__name__)

#: Seconds to wait for a scheduler named by its address before giving up with one line.
CONNECT_TIMEOUT_S = 20

_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"(?:(tcp|tls|ucx|inproc|ws|wss)://)?[\w.\-\[\]:]+(?::\d+)?")


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster named by text: ``local`` / ``local:N`` (``workers``; None: one per core) or the
    address of a running scheduler."""

    address: str | None = None
    workers: int | None = None

    def describe(self) -> str:
        if self.address is not None:
            return self.address
        return "local" if self.workers is None else f"local:{self.workers}"


def parse(text: str) -> ClusterSpec:
    """``--dask``'s value checked, without importing dask: ``local``, ``local:N`` (N >= 1) or a
    scheduler address such as ``tcp://10.0.0.5:8786`` or ``10.0.0.5:8786``.

    >>> parse("local:2")
    ClusterSpec(address=None, workers=2)
    >>> parse("tcp://127.0.0.1:8786").address
    'tcp://127.0.0.1:8786'
    """
    text = text.strip()
    local = _LOCAL.fullmatch(text)
    if local:
        workers = None if local.group(1) is None else int(local.group(1))
        if workers is not None and workers < 1:
            raise ValueError(f"local:{workers}: a local cluster needs at least 1 worker")
        return ClusterSpec(workers=workers)
    if not text or not _ADDRESS.fullmatch(text) or text.startswith("local"):
        raise ValueError(f"{text!r} is neither local[:N] nor a scheduler address (tcp://HOST:PORT)")
    return ClusterSpec(address=text)


@dataclass
class _Binding:
    """What a ``use`` block set: a client given, or a spec whose client is made when first asked
    for (and closed when the block ends)."""

    spec: ClusterSpec | None
    client: Any = None
    _owned: list[Any] = field(default_factory=list)

    def get(self) -> Any:
        if self.client is None and self.spec is not None:
            self.client = _connect(self.spec, self._owned)
        return self.client

    def close(self) -> None:
        for thing in reversed(self._owned):
            try:
                thing.close()
            except Exception:  # closing must not hide what ended the block
                logger.debug("closing %r failed", thing, exc_info=True)
        self._owned.clear()


_CURRENT: ContextVar[_Binding | None] = ContextVar("rarity_score_cluster", default=None)


def current() -> Any:
    """The ``distributed.Client`` that work inside the current ``use`` block runs on, made on first
    call for a spec; None outside any block (work runs in this process)."""
    binding = _CURRENT.get()
    return None if binding is None else binding.get()


def active() -> bool:
    """Whether work is to go to a cluster (without making it: a spec's cluster starts only when
    :func:`current` is first called)."""
    binding = _CURRENT.get()
    return binding is not None and (binding.client is not None or binding.spec is not None)


@contextmanager
def use(cluster: Any) -> Iterator[None]:
    """Run the sweeps and extractions of this block on ``cluster``: a ``distributed.Client``, a
    :class:`ClusterSpec`, or text for :func:`parse`; None runs them here (a no-op block).

    A client given is left open; a cluster made from a spec is closed at the end of the block.
    """
    if cluster is None:
        binding = _Binding(spec=None)
    elif isinstance(cluster, ClusterSpec):
        binding = _Binding(spec=cluster)
    elif isinstance(cluster, str):
        binding = _Binding(spec=parse(cluster))
    else:
        distributed = require("distributed", what="a Dask cluster", extra="dask")
        if not isinstance(cluster, distributed.Client):
            raise TypeError(
                f"expected a distributed.Client, a ClusterSpec or text such as 'local:2', got "
                f"{type(cluster).__name__}"
            )
        binding = _Binding(spec=None, client=cluster)
    token = _CURRENT.set(binding)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        binding.close()


def _debugging() -> bool:
    return logging.getLogger("rarity_score").isEnabledFor(logging.DEBUG)


def _connect(spec: ClusterSpec, owned: list[Any]) -> Any:
    """A client of ``spec``'s cluster; what it makes is appended to ``owned`` for closing."""
    distributed = require("distributed", what="--dask", extra="dask")
    if spec.address is None:
        workers = spec.workers or os.cpu_count() or 1
        logger.info("starting a local Dask cluster of %d worker processes", workers)
        # One thread per worker process, whose BLAS Dask limits to one thread too: local:N uses N
        # cores, as N tasks at a time, each with its own float32 blocks.
        # Every worker keeps its copy of the scattered features (Dask's memory manager would drop
        # all but one), so that a worker lost mid-run costs time, not the run.
        import dask

        with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}):
            local = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                worker_dashboard_address=None,
                # A task's error reaches the user once, as this package's one line; Dask's own
                # logs of it (tracebacks, lost workers) only with -vv.
                silence_logs=logging.NOTSET if _debugging() else logging.CRITICAL,
            )
        owned.append(local)
        client = distributed.Client(local)
        owned.insert(0, client)  # closed before its cluster
        return client
    try:
        client = distributed.Client(spec.address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise ConnectionError(
            f"--dask {spec.address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
            f"({type(error).__name__}); start one (`dask scheduler`, `dask worker ADDRESS`) or use "
            "--dask local:N"
        ) from None
    owned.append(client)
    return client


def keep(client: Any, value: Any, *, prefix: str) -> Any:
    """A future of ``value`` held on ``client``'s cluster as the result of a task (key
    ``prefix-<random>``) rather than as scattered data: Dask computes a lost task result again,
    whereas scattered data whose every copy dies is gone (its memory manager keeps one copy once
    nothing waits for it). What the tasks of one sweep or extraction share travels this way."""
    import warnings

    with warnings.catch_warnings():
        # The value is meant to live in the graph (that is what makes it rebuildable); Dask's
        # advice against large graphs is for data repeated in many tasks, which this is not.
        warnings.filterwarnings("ignore", message="Sending large graph")
        return client.submit(_unchanged, value, key=f"{prefix}-{uuid.uuid4().hex}", pure=False)


def _unchanged(value: Any) -> Any:
    return value
