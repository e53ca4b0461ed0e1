"""The real manifold (k-NN radii computed once) and the one-sweep evaluation of generated sets.

Which reducers a sweep runs, and what becomes of them, is read from the metric declarations of
:mod:`rarity_score.metrics`: this module names no metric.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rarity_score import cluster, defaults
from rarity_score import metrics as _metrics
from rarity_score._progress import progress_bar
from rarity_score._validation import as_features, check_k, check_same_dim
from rarity_score.engine.backend import Backend, select_backend
from rarity_score.engine.exact import knn_distances, knn_radii
from rarity_score.engine.plan import tile_edge
from rarity_score.engine.points import Frame, PointSet
from rarity_score.engine.sweep import sweep
from rarity_score.metrics.base import Metric, ReducerSpec, SweepContext
from rarity_score.options import EngineOptions
from rarity_score.results import Evaluation

logger = logging.getLogger(__name__)


class RealManifold:
    """The union of the real samples' k-NN spheres, ready to score any number of generated sets.

    The radii, and each real sample's distance to its nearest other real sample, are computed
    once, exactly (float64 definitions, float32 speed), in tiles that fit the engine's memory
    budget.

    Args:
        real: real features, shape (N, D): numpy array or torch tensor, float16/32/64 (or any
            real dtype that converts exactly, e.g. integers up to 2**53; lossy ones are refused).
        k: neighbourhood size; a radius is the distance to the k-th nearest other real sample.
        engine: how the sweep runs (backend, device, memory budget, tile size, progress bar; see
            :class:`~rarity_score.options.EngineOptions`); results never depend on it.
        label: how errors name the real set (the CLI gives the file: ``"real features r.npz"``);
            :meth:`evaluate` takes the same for a generated set.

    Example:
        >>> import numpy as np
        >>> from rarity_score import RealManifold
        >>> real = np.array([[0.0], [1.0], [3.0], [7.0]])
        >>> manifold = RealManifold(real, k=1)
        >>> manifold.radii
        array([1., 1., 2., 4.])
        >>> manifold.nearest_other_distance
        array([1., 1., 2., 4.])
        >>> manifold.score(np.array([[0.5], [6.0], [20.0]]))
        array([ 1.,  4., nan])
    """

    def __init__(
        self,
        real: Any,
        k: int = defaults.K,
        *,
        engine: EngineOptions | None = None,
        label: str = "real features",
    ) -> None:
        if engine is None:
            engine = EngineOptions()
        elif not isinstance(engine, EngineOptions):
            raise TypeError(f"engine must be an EngineOptions, got {type(engine).__name__}")
        self.engine: EngineOptions = engine
        self._backend: Backend = select_backend(
            engine.backend, engine.device, real, precision=engine.precision
        )
        data = as_features(real, label, self._backend)
        self.k: int = check_k(k, int(data.shape[0]), label=label)
        self.n_real: int = int(data.shape[0])
        self.dim: int = int(data.shape[1])
        self._edge = tile_edge(engine.memory_budget, engine.tile_size)
        started = time.perf_counter()
        points = self._points_of(data, Frame.fit(self._backend, data), label)
        # One sweep gives both: the k-th neighbour makes the spheres, the first one tells
        # authenticity how close real samples lie to each other.
        with _progress(engine, "k-NN radii") as hook:
            nearest, radii = knn_distances(points, (1, self.k), self._edge, hook)
        # Visiting spheres smallest first lets rarity stop at the first sphere that holds a sample;
        # equal radii keep input order, so ties go to the smaller index.
        order = np.argsort(radii, kind="stable")
        self._points = points.reordered(order)
        self._sorted_radii = radii[order]
        self._sorted_nearest = nearest[order]
        self.radii: np.ndarray = radii
        self.radii.flags.writeable = False
        self._nearest_other = nearest
        self._nearest_other.flags.writeable = False
        logger.debug(
            "real manifold: %d x %d, k=%d, %.2fs",
            self.n_real,
            self.dim,
            self.k,
            time.perf_counter() - started,
        )

    @property
    def nearest_other_distance(self) -> np.ndarray:
        """Each real sample's distance to its nearest other real sample, by input row (read-only;
        0 for a sample with an exact duplicate)."""
        return self._nearest_other

    def score(self, fake: Any, *, label: str = "fake features") -> np.ndarray:
        """Rarity score of each generated sample: float64, NaN where out of the manifold."""
        return self.evaluate(fake, metrics=("rarity",), label=label).rarity

    def evaluate(
        self, fake: Any, metrics: Iterable[str] | None = None, *, label: str = "fake features"
    ) -> Evaluation:
        """All asked-for metrics of a generated set, from one sweep over the real spheres.

        ``metrics`` is None (all) or some of :func:`rarity_score.metrics.names`; rarity,
        in-manifold flags and the sphere index are always computed. Asking for rarity or
        precision alone lets the sweep stop early for samples already placed. ``label`` names the
        set in errors.
        """
        wanted = _metrics.check_names(metrics)
        data = as_features(fake, label, self._backend)
        check_same_dim(self.dim, int(data.shape[1]), label)
        started = time.perf_counter()

        computed = _metrics.computed_with(wanted)
        specs = _metrics.specs_of(computed)
        # The two point sets of ``data`` (its own frame for its radii, the real frame for the
        # sweep) share where it was sent, so that it reaches a cluster's workers once.
        shipped: dict[str, Any] = {}
        fake_radii = None
        if any(spec.needs_fake_radii for spec in specs):
            fake_radii = self._fake_radii(data, label, computed, shipped)
        if fake_radii is None:
            specs = tuple(spec for spec in specs if not spec.needs_fake_radii)
        fake_points = self._points_of(data, self._points.frame, label, shipped)
        context = self._context(fake_points, fake_radii)
        evaluation = self._sweep(computed, specs, context, wanted)
        logger.debug(
            "evaluated %d generated samples (%s) in %.2fs",
            evaluation.n_fake,
            ", ".join(wanted),
            time.perf_counter() - started,
        )
        return evaluation

    def leave_one_out(self) -> Evaluation:
        """Rarity of each real sample against the other real samples' spheres (its own sphere left
        out; its neighbours' radii are those of the full set).

        This is the paper's way to compare the rarity of two datasets that share a concept: score
        each dataset against its own manifold this way, in one feature space, and compare the
        histograms. ``extra["method"]`` records it. A sample in no other sphere is out of the
        manifold (NaN), as for generated samples. The metrics are those declared
        ``in_leave_one_out`` (rarity).
        """
        computed = tuple(metric for metric in _metrics.REGISTRY if metric.in_leave_one_out)
        # Rows and columns are the same sorted set, so the masked diagonal is each own sphere.
        context = self._context(self._points, None, same_set=True)
        names = tuple(metric.name for metric in computed)
        specs = _metrics.specs_of(computed)
        return self._sweep(computed, specs, context, names, extra={"method": "leave-one-out"})

    def _context(
        self, fake: PointSet, fake_radii: np.ndarray | None, *, same_set: bool = False
    ) -> SweepContext:
        """What the reducers and metrics see of this manifold when ``fake`` is swept over it."""
        return SweepContext(
            k=self.k,
            real=self._points,
            fake=fake,
            sorted_radii=self._sorted_radii,
            real_nearest_distance=self._sorted_nearest,
            fake_radii=fake_radii,
            same_set=same_set,
        )

    def _sweep(
        self,
        computed: Sequence[Metric],
        specs: Sequence[ReducerSpec],
        context: SweepContext,
        wanted: tuple[str, ...],
        extra: dict[str, object] | None = None,
    ) -> Evaluation:
        """Build each spec once, sweep once, finish each spec, then compute each metric."""
        reducers = [spec.make(context) for spec in specs]
        with _progress(self.engine, "k-NN sweep") as hook:
            sweep(
                context.real,
                context.fake,
                reducers,
                self._edge,
                row_radii=context.sorted_radii,
                col_radii=context.fake_radii,
                same_set=context.same_set,
                progress=hook,
            )
        finished: dict[str, Any] = {}
        for spec, reducer in zip(specs, reducers, strict=True):
            finished.update(spec.finish(reducer, context))
        by_position: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        for metric in computed:
            per_sample, kept = metric.compute(finished, context)
            by_position.update(per_sample)
            if kept is not None:
                values[metric.name] = kept
        # Columns by sweep position; generated sets are swept in input order, but leave-one-out
        # sweeps the real set sorted by radius.
        order = context.fake.order
        declared = [column.name for column in _metrics.columns_of()]
        names = [name for name in declared if name in by_position]
        names += [name for name in by_position if name not in declared]
        columns = {
            name: _to_input_order(by_position[name], order)
            if context.same_set
            else by_position[name]
            for name in names
        }
        return Evaluation(
            k=self.k,
            n_real=self.n_real,
            dim=self.dim,
            metrics=wanted,
            columns=columns,
            values=values,
            extra=dict(extra or {}),
        )

    def _fake_radii(
        self, data: Any, label: str, computed: Sequence[Metric], shipped: dict[str, Any]
    ) -> np.ndarray | None:
        """The generated samples' own k-NN radii (for recall), or None with a warning if too few."""
        n_fake = int(data.shape[0])
        if n_fake <= self.k:
            needing = [m.name for m in computed if any(s.needs_fake_radii for s in m.reducers)]
            verb, pronoun = ("needs", "it is") if len(needing) == 1 else ("need", "they are")
            warnings.warn(
                f"{' and '.join(needing)} {verb} more than k={self.k} generated samples "
                f"(got {n_fake}); {pronoun} reported as NaN",
                stacklevel=3,
            )
            return None
        own = self._points_of(data, Frame.fit(self._backend, data), label, shipped)
        with _progress(self.engine, "k-NN radii (generated)") as hook:
            return knn_radii(own, self.k, self._edge, hook)

    def _points_of(
        self, data: Any, frame: Frame, label: str, shipped: dict[str, Any] | None = None
    ) -> PointSet:
        return PointSet.build(
            self._backend,
            data,
            frame,
            cache_bytes=self.engine.memory_budget,
            edge=self._edge,
            label=label,
            shipped=shipped,
        )


def _to_input_order(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Values listed by position (input row ``order[p]`` at position p), listed by input row."""
    out = np.empty_like(values)
    out[order] = values
    return out


class _Bar:
    """The sweep's ``progress(done, total)`` hook drawn as the package's progress bar (created at
    the first call, when the total is known)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            # A cluster reports its sweep per task (each a range of tiles), one process per tile.
            unit = "task" if cluster.active() else "tile"
            self.bar = progress_bar(total, self.description, unit=unit, enabled=True)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _progress(engine: EngineOptions, description: str) -> Iterator[_Bar | None]:
    """A progress hook for one sweep when the options ask for it and stderr is a terminal; None
    (no hook, no cost) otherwise."""
    if not (engine.progress and sys.stderr.isatty()):
        yield None
        return
    bar = _Bar(description)
    try:
        yield bar
    finally:
        bar.close()


def evaluate(
    real: Any,
    fake: Any,
    k: int = defaults.K,
    *,
    metrics: Iterable[str] | None = None,
    engine: EngineOptions | None = None,
) -> Evaluation:
    """Rarity score and every k-NN-sphere metric of ``fake`` against ``real``, in one sweep.

    See :class:`RealManifold` for the arguments and :class:`~rarity_score.results.Evaluation`
    for what comes back.

    Example:
        >>> import numpy as np
        >>> from rarity_score import evaluate
        >>> rng = np.random.default_rng(0)
        >>> real, fake = rng.normal(size=(200, 8)), rng.normal(size=(100, 8))
        >>> result = evaluate(real, fake, k=3)
        >>> bool(np.isnan(result.rarity[~result.in_manifold]).all())
        True
        >>> 0.0 <= result.precision <= 1.0
        True
    """
    # Names are checked before the radii are computed: a typo costs nothing.
    wanted = _metrics.check_names(metrics)
    return RealManifold(real, k, engine=engine).evaluate(fake, metrics=wanted)


def rarity_score(
    real: Any,
    fake: Any,
    k: int = defaults.K,
    *,
    engine: EngineOptions | None = None,
) -> np.ndarray:
    """Rarity score of each generated sample (Han et al., ICLR 2023).

    ``rarity(g) = min { rad_k(r) : d(r, g) < rad_k(r) }``: the radius of the smallest real k-NN
    sphere containing ``g``. Float64, shape (M,), NaN where ``g`` lies in no sphere (out of the
    manifold; the paper discards such samples). Units are those of the feature space: compare
    scores only within one feature extractor, real set and k.

    Example:
        >>> import numpy as np
        >>> from rarity_score import rarity_score
        >>> real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
        >>> rarity_score(real, np.array([[0.2, 0.1], [20.0, 20.0]]), k=1)
        array([ 1., nan])
    """
    return RealManifold(real, k, engine=engine).score(fake)
