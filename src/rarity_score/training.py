"""The metric of a training loop: the real manifold built once, generated batches scored as they
come, one :class:`~rarity_score.results.Evaluation` of every sample seen, on every process.

:data:`RarityMetric` is a :class:`torchmetrics.Metric` where torchmetrics is installed
(``pip install 'rarity-score[training]'``): its states are lists of tensors that torchmetrics
gathers across the processes of ``torch.distributed`` when :meth:`compute` runs. Without
torchmetrics it is :class:`PlainRarityMetric`, the same methods on numpy arrays, which gathers
with ``torch.distributed.all_gather_object`` when a process group is initialised (and needs no
torch at all otherwise). Both share one body of logic.

Sample indices
--------------
Every generated sample carries an index: the position of the sample in the dataset (what a
``DistributedSampler`` hands out), given as ``update(batch, indices)``. :meth:`compute` sorts
the samples of all processes by index and keeps one row per index, so that the padding a
``DistributedSampler`` adds (it repeats samples to give every process as many) is not counted
twice, and the result equals one :func:`rarity_score.evaluate` of the dataset. Rows given the
same index twice must be the same sample: their features are compared (a 53-bit fingerprint of
their float64 values; the features themselves when they are kept) and so are their scores, and a
difference is a ValueError. Without indices, samples are numbered 0, 1, 2, ... in update order;
that is refused under ``torch.distributed``, where the duplicates could not be found, and so is
mixing batches with and without indices.

Whole-set metrics
-----------------
Every per-sample column (rarity, the chosen sphere, sphere counts, realism, nearest real sample,
authenticity) depends on one generated sample and the real set only, so a batch is scored when
it comes and only its columns are kept. Recall and coverage are facts about the whole generated
set (its own k-NN spheres; the nearest generated sample of each real sample), which no batch
gives. They are not computed unless asked for; when they are, the batches' features are kept
instead (float64, so 8 x D bytes a sample on each process, all of them gathered on every
process), and :meth:`compute` scores the deduplicated set in one sweep: the result is exactly
that of :func:`rarity_score.evaluate`. Refusing them would leave a user to gather the features
by hand for the same sweep; keeping the features costs memory only for those who ask.

Example (numpy batches, indices numbered in update order):

>>> import numpy as np
>>> from rarity_score.training import RarityMetric
>>> rng = np.random.default_rng(0)
>>> real, fake = rng.normal(size=(200, 8)), rng.normal(size=(60, 8))
>>> metric = RarityMetric(real, k=3)
>>> for start in range(0, 60, 16):
...     metric.update(fake[start : start + 16])
>>> result = metric.compute()
>>> result.n_fake, result.metrics
(60, ('rarity', 'precision', 'density', 'realism', 'nearest', 'authenticity'))
>>> from rarity_score import evaluate
>>> bool(np.array_equal(result.rarity, evaluate(real, fake, k=3).rarity, equal_nan=True))
True

Batches in any order, with their dataset indices, one sample given twice (as a
``DistributedSampler`` pads); recall asked for too:

>>> metric = RarityMetric(real, k=3, metrics=("rarity", "recall"))
>>> metric.update(fake[30:], indices=np.arange(30, 60))
>>> metric.update(fake[:30], indices=np.arange(30))
>>> metric.update(fake[:1], indices=[0])
>>> result = metric.compute()
>>> result.n_fake, bool((metric.sample_indices == np.arange(60)).all())
(60, True)
>>> result.recall == evaluate(real, fake, k=3, metrics=("rarity", "recall")).recall
True
>>> metric.reset()  # the samples go; the real manifold stays
>>> metric.sample_indices is None
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from rarity_score import defaults
from rarity_score import metrics as _metrics
from rarity_score._torch import is_tensor
from rarity_score._validation import as_features, check_same_dim
from rarity_score.engine.backend import NumpyBackend
from rarity_score.manifold import RealManifold
from rarity_score.metrics.base import DTYPES, Column
from rarity_score.options import EngineOptions
from rarity_score.results import Evaluation

__all__ = ["HAS_TORCHMETRICS", "PlainRarityMetric", "RarityMetric", "whole_set_metrics"]

#: Sample indices are held as float64 in the torchmetrics states: exact up to 2**53.
_MAX_INDEX = 2**53

#: Float columns of two copies of one sample must agree to this relative tolerance (the
#: engine's bound across backends and devices; the same process gives equal values).
_RTOL = 1e-9

_INDEX = "sample_index"
_FINGERPRINT = "fingerprint"
_FEATURES = "features"


def whole_set_metrics() -> tuple[str, ...]:
    """The metrics whose value is a fact about the whole generated set, not the sum of its
    samples (recall, coverage): those that keep a per-set value their arrays cannot give."""
    return tuple(m.name for m in _metrics.REGISTRY if m.summarize is None and m.values)


def _state_name(column: str) -> str:
    return f"column_{column}"


class _RarityMetric:
    """The logic both classes share; storing and gathering the states is theirs
    (:meth:`_new_state`, :meth:`_append`, :meth:`_clear_states`, :meth:`_gathered`,
    :meth:`_syncs`): each class is a thin layer over this one."""

    manifold: RealManifold
    k: int
    metric_names: tuple[str, ...]
    keeps_features: bool
    _columns: tuple[Column, ...]
    _numbered: bool | None
    _next_index: int
    _batches: int
    _sample_indices: np.ndarray | None

    # ------------------------------------------------------------------ set-up

    def _setup(
        self,
        real: Any,
        k: int | None,
        metrics: str | Iterable[str] | None,
        engine: EngineOptions | None,
    ) -> None:
        whole = whole_set_metrics()
        if metrics is None:
            wanted = tuple(name for name in _metrics.names() if name not in whole)
        else:
            wanted = _metrics.check_names(metrics)
        if isinstance(real, RealManifold):
            if engine is not None:
                raise ValueError(
                    "engine applies when the real manifold is built; a fitted RealManifold "
                    "keeps its own (pass the real features instead to choose one)"
                )
            if k is not None and k != real.k:
                raise ValueError(
                    f"k={k} but the RealManifold was fitted with k={real.k}; leave k out or "
                    "fit the manifold again"
                )
            manifold = real
        else:
            manifold = RealManifold(real, defaults.K if k is None else k, engine=engine)
        self.manifold = manifold
        self.k = manifold.k
        self.metric_names = wanted
        self.keeps_features = any(name in whole for name in wanted)
        computed = {m.name for m in _metrics.computed_with(wanted)}
        self._columns = tuple(
            column
            for column in _metrics.columns_of()
            if any(column in m.columns for m in _metrics.REGISTRY if m.name in computed)
        )
        self._new_state(_INDEX)
        self._new_state(_FINGERPRINT)
        if self.keeps_features:
            self._new_state(_FEATURES)
        else:
            for column in self._columns:
                self._new_state(_state_name(column.name))
        self._forget()

    def _forget(self) -> None:
        """What :meth:`reset` clears beside the states."""
        self._numbered = None
        self._next_index = 0
        self._batches = 0
        self._sample_indices = None

    # ------------------------------------------------------------------ hooks

    def _new_state(self, name: str) -> None:
        raise NotImplementedError

    def _append(self, name: str, values: np.ndarray) -> None:
        raise NotImplementedError

    def _clear_states(self) -> None:
        raise NotImplementedError

    def _gathered(self) -> dict[str, np.ndarray]:
        """Every state of every process (this one alone outside ``torch.distributed``), in
        process order, each as one flat numpy array."""
        raise NotImplementedError

    def _syncs(self) -> bool:
        """Whether :meth:`compute` gathers the samples of several processes."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the public methods

    @property
    def sample_indices(self) -> np.ndarray | None:
        """The sample index of each row of the last :meth:`compute` (increasing, each once), or
        None before it (and after an update or :meth:`reset`)."""
        return self._sample_indices

    def update(self, fake: Any, indices: Any = None) -> None:
        """Add a batch of generated features, shape (B, D) (numpy array or torch tensor), with
        the dataset index of each (any B distinct-or-repeated non-negative integers; None:
        numbered on from the last batch, refused under ``torch.distributed``)."""
        self._sample_indices = None
        self._batches += 1
        label = f"generated batch {self._batches}"
        explicit = indices is not None
        given = _as_indices(indices, label) if explicit else None
        self._check_numbering(explicit)
        if self.keeps_features:
            data = as_features(fake, label, NumpyBackend())
            check_same_dim(self.manifold.dim, int(data.shape[1]), label)
            values = np.asarray(data, dtype=np.float64)
            n = int(values.shape[0])
            columns: dict[str, np.ndarray] = {}
        else:
            evaluation = self.manifold.evaluate(fake, metrics=self.metric_names, label=label)
            expected = [column.name for column in self._columns]
            if list(evaluation.columns) != expected:  # pragma: no cover (the declarations lie)
                raise RuntimeError(
                    f"the sweep gave columns {list(evaluation.columns)}, expected {expected}"
                )
            values = _float64_rows(fake)
            n = evaluation.n_fake
            columns = dict(evaluation.columns)
        if given is None:
            given = np.arange(self._next_index, self._next_index + n, dtype=np.int64)
        elif len(given) != n:
            raise ValueError(f"{label}: {len(given)} indices for {n} samples")
        self._numbered = explicit  # once a batch is in
        self._next_index += n
        self._append(_INDEX, given)
        self._append(_FINGERPRINT, _fingerprints(values))
        if self.keeps_features:
            self._append(_FEATURES, values.ravel())
        for name, column in columns.items():
            self._append(_state_name(name), np.asarray(column))

    def _check_numbering(self, explicit: bool) -> None:
        if self._numbered is not None and self._numbered != explicit:
            raise ValueError(
                "give indices with every batch or with none: numbers given to some batches "
                "could collide with those counted for the others"
            )
        if not explicit and self._syncs():
            raise ValueError(
                "under torch.distributed, pass update(batch, indices) with the dataset indices "
                "of the batch (those of the DistributedSampler): without them the samples it "
                "repeats to pad the processes cannot be found and would be counted twice"
            )

    def _evaluation(self) -> Evaluation:
        """All samples seen by all processes, by increasing index, each index once."""
        states = self._gathered()
        index = states[_INDEX].astype(np.int64)
        if index.size == 0:
            raise ValueError("no generated samples yet: call update(batch) before compute()")
        fingerprint = states[_FINGERPRINT]
        compared: dict[str, tuple[np.ndarray, bool]] = {}
        features = None
        if self.keeps_features:
            features = states[_FEATURES].reshape(index.size, self.manifold.dim)
            compared["features"] = (features, True)
        else:
            for column in self._columns:
                values = states[_state_name(column.name)]
                compared[column.name] = (
                    values.astype(DTYPES[column.kind]),
                    column.kind != "float",
                )
        keep = _deduplicated(index, fingerprint, compared)
        self._sample_indices = index[keep]
        if features is not None:
            return self.manifold.evaluate(features[keep], metrics=self.metric_names)
        return Evaluation(
            k=self.k,
            n_real=self.manifold.n_real,
            dim=self.manifold.dim,
            metrics=self.metric_names,
            columns={name: values[keep] for name, (values, _) in compared.items()},
        )

    def _reset(self) -> None:
        self._clear_states()
        self._forget()


def _as_indices(indices: Any, label: str) -> np.ndarray:
    """``indices`` as a 1-D int64 array of dataset indices, or a ValueError."""
    if is_tensor(indices):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(
            f"{label}: indices must be a 1-D sequence of integers (the dataset index of each "
            f"sample); got shape {array.shape}, dtype {array.dtype}"
        )
    if array.size and (int(array.min()) < 0 or int(array.max()) >= _MAX_INDEX):
        raise ValueError(f"{label}: indices must lie in [0, 2**53)")
    return array.astype(np.int64)


def _float64_rows(fake: Any) -> np.ndarray:
    """A batch the sweep has accepted, as float64 numpy (exact: lossy inputs were refused)."""
    if is_tensor(fake):
        import torch

        return np.asarray(fake.detach().to(device="cpu", dtype=torch.float64).numpy())
    return np.asarray(fake, dtype=np.float64)


#: One odd 64-bit weight per feature dimension (fixed: the same on every process and run).
_WEIGHTS: dict[int, np.ndarray] = {}


def _fingerprints(rows: np.ndarray) -> np.ndarray:
    """A 53-bit hash of each row's float64 values (as float64, which holds it exactly): a
    weighted sum of the bit patterns, modulo 2**64, its top 53 bits kept."""
    rows = np.ascontiguousarray(rows, dtype=np.float64) + 0.0  # -0.0 and 0.0 alike
    dim = rows.shape[1]
    weights = _WEIGHTS.get(dim)
    if weights is None:
        draw = np.random.default_rng(20230501).integers(0, 2**63, size=dim, dtype=np.uint64)
        weights = _WEIGHTS.setdefault(dim, draw * np.uint64(2) + np.uint64(1))
    hashed = (rows.view(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    hashed ^= hashed >> np.uint64(31)
    hashed *= np.uint64(0x9E3779B97F4A7C15)
    return (hashed >> np.uint64(11)).astype(np.float64)


def _deduplicated(
    index: np.ndarray, fingerprint: np.ndarray, compared: dict[str, tuple[np.ndarray, bool]]
) -> np.ndarray:
    """The rows to keep, one per index, by increasing index, after checking that the rows of a
    repeated index are one sample (same fingerprint; same ``compared`` values: exactly where
    the flag says so, else to ``_RTOL``)."""
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    if first.all():
        return order
    group_start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    repeat = order[~first]
    original = order[group_start[~first]]
    other = fingerprint[repeat] != fingerprint[original]
    if "features" in compared:
        kept = compared["features"][0]
        other |= (kept[repeat] != kept[original]).any(axis=1)
    if other.any():
        bad = other.argmax()
        raise ValueError(
            f"sample index {index[repeat][bad]} was given with different features in two "
            "batches: indices must be the dataset's, one index per sample"
        )
    for name, (values, exact) in compared.items():
        if name == "features":
            continue
        a, b = values[repeat], values[original]
        differ = a != b if exact else ~np.isclose(a, b, rtol=_RTOL, atol=0.0, equal_nan=True)
        if differ.any():
            bad = differ.argmax()
            raise ValueError(
                f"sample index {index[repeat][bad]} was scored twice with different {name} "
                f"({b[bad]!r} and {a[bad]!r})"
            )
    return order[first]


_DOC = """Scores of generated samples against a real set, gathered batch by batch.

    Args:
        real: real features, shape (N, D) (numpy array or torch tensor), or a fitted
            :class:`~rarity_score.RealManifold`; the manifold is built once, here.
        k: neighbourhood size; None: ``defaults.K`` (3), or the fitted manifold's k (another
            k is a ValueError).
        metrics: names as for :func:`rarity_score.evaluate`; None: every metric a batch gives
            (all but recall and coverage, which keep the features: see the module's notes).
        engine: how the sweeps run (:class:`~rarity_score.options.EngineOptions`); not with a
            fitted manifold.

    ``update(fake, indices=None)`` adds a batch, ``compute()`` returns the
    :class:`~rarity_score.results.Evaluation` of every sample seen (all processes; call it on
    every process, it is a collective), rows by increasing sample index, each index once
    (:attr:`sample_indices` says which), and ``reset()`` forgets the samples, not the manifold.
    """


class PlainRarityMetric(_RarityMetric):
    __doc__ = (
        _DOC
        + """
    This class needs neither torch nor torchmetrics (torch tensors are accepted where torch is
    installed); under ``torch.distributed`` (an initialised process group, or ``process_group``)
    :meth:`compute` gathers with ``torch.distributed.all_gather_object``.
    """
    )

    def __init__(
        self,
        real: Any,
        k: int | None = None,
        *,
        metrics: str | Iterable[str] | None = None,
        engine: EngineOptions | None = None,
        process_group: Any = None,
    ) -> None:
        self.process_group = process_group
        self._states: dict[str, list[np.ndarray]] = {}
        self._setup(real, k, metrics, engine)

    def _new_state(self, name: str) -> None:
        self._states[name] = []

    def _append(self, name: str, values: np.ndarray) -> None:
        self._states[name].append(values)

    def _clear_states(self) -> None:
        for name in self._states:
            self._states[name] = []

    def _local(self, name: str) -> np.ndarray:
        parts = self._states[name]
        return np.concatenate(parts) if parts else np.empty(0)

    def _syncs(self) -> bool:
        return _world_size(self.process_group) > 1

    def _gathered(self) -> dict[str, np.ndarray]:
        local = {name: self._local(name) for name in self._states}
        if not self._syncs():
            return local
        import torch.distributed as dist

        parts: list[Any] = [None] * _world_size(self.process_group)
        dist.all_gather_object(parts, local, group=self.process_group)
        return {name: np.concatenate([part[name] for part in parts]) for name in local}

    def compute(self) -> Evaluation:
        """The :class:`~rarity_score.results.Evaluation` of every sample seen (see the class)."""
        return self._evaluation()

    def reset(self) -> None:
        """Forget the samples (the real manifold stays)."""
        self._reset()


def _world_size(group: Any) -> int:
    """The processes of ``group`` (the default group when None) under an initialised
    ``torch.distributed``; 1 otherwise. Imports no torch that is not already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 1
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size(group))


def _load_torchmetrics() -> Any:
    try:
        return importlib.import_module("torchmetrics")
    except ImportError:
        return None


_torchmetrics = _load_torchmetrics()

#: Whether :data:`RarityMetric` is a :class:`torchmetrics.Metric`.
HAS_TORCHMETRICS: bool = _torchmetrics is not None

RarityMetric: type[_RarityMetric]

if _torchmetrics is not None:
    import torch

    _Metric: Any = _torchmetrics.Metric

    class _Boxed:
        """What torchmetrics' compute wrapper returns untouched (it would take a dataclass
        apart, and cannot rebuild a frozen one)."""

        def __init__(self, evaluation: Evaluation) -> None:
            self.evaluation = evaluation

    def _unboxing(compute: Callable[[], _Boxed]) -> Callable[[], Evaluation]:
        def unboxed() -> Evaluation:
            return compute().evaluation

        unboxed.__doc__ = compute.__doc__
        return unboxed

    class TorchmetricsRarityMetric(_RarityMetric, _Metric):
        __doc__ = (
            _DOC
            + """
    A :class:`torchmetrics.Metric`: other keyword arguments go to it (``process_group``,
    ``sync_on_compute``, ``compute_on_cpu``, ...). Its states are lists of float64 tensors
    (indices, fingerprints, one per column, or the features) on the metric's device, gathered
    by torchmetrics across processes. Calling the metric (``forward``) adds a batch as
    :meth:`update` does and returns None: the rarity of a batch alone is not what a training
    loop reads.
    """
        )

        is_differentiable = False
        higher_is_better = None
        full_state_update = False

        def __init__(
            self,
            real: Any,
            k: int | None = None,
            *,
            metrics: str | Iterable[str] | None = None,
            engine: EngineOptions | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self._setup(real, k, metrics, engine)
            # An empty process's placeholder state takes the metric's dtype: that of the others.
            self.set_dtype(torch.float64)
            self.compute = _unboxing(self.compute)  # type: ignore[method-assign]

        def __setstate__(self, state: dict[str, Any]) -> None:
            super().__setstate__(state)
            self.compute = _unboxing(self.compute)  # type: ignore[method-assign]

        def _new_state(self, name: str) -> None:
            self.add_state(name, default=[], dist_reduce_fx="cat")

        def _append(self, name: str, values: np.ndarray) -> None:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.device)
            getattr(self, name).append(tensor)

        def _clear_states(self) -> None:
            _Metric.reset(self)

        def _gathered(self) -> dict[str, np.ndarray]:
            # torchmetrics synced the states before compute: one tensor each, or still a list
            # (one process, or sync_on_compute=False).
            out = {}
            for name in self._defaults:
                state = getattr(self, name)
                if isinstance(state, list):
                    state = torch.cat(state) if state else torch.zeros(0, dtype=torch.float64)
                out[name] = state.detach().to(device="cpu", dtype=torch.float64).numpy()
            return out

        def _syncs(self) -> bool:
            return bool(self.sync_on_compute) and _world_size(self.process_group) > 1

        def compute(self) -> Any:
            """The :class:`~rarity_score.results.Evaluation` of every sample seen (see the
            class)."""
            return _Boxed(self._evaluation())

        def forward(self, fake: Any, indices: Any = None) -> None:  # type: ignore[override]
            self.update(fake, indices)

        def reset(self) -> None:
            """Forget the samples (the real manifold stays)."""
            self._reset()

    RarityMetric = TorchmetricsRarityMetric
    __all__ += ["TorchmetricsRarityMetric"]
else:
    RarityMetric = PlainRarityMetric
