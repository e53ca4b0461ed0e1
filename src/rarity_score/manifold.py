"""The real manifold (k-NN radii computed once) and the one-sweep evaluation of generated sets."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from rarity_score import defaults
from rarity_score._validation import as_features, check_k, check_metrics, check_same_dim
from rarity_score.engine.backend import Backend, select_backend
from rarity_score.engine.exact import knn_radii
from rarity_score.engine.plan import tile_edge
from rarity_score.engine.points import Frame, PointSet
from rarity_score.engine.sweep import Reducer, sweep
from rarity_score.metrics import (
    FakeSphereHits,
    NearestReal,
    Realism,
    RealSphereCounts,
    SmallestSphere,
)
from rarity_score.results import Evaluation

logger = logging.getLogger(__name__)


class RealManifold:
    """The union of the real samples' k-NN spheres, ready to score any number of generated sets.

    The radii are computed once, exactly (float64 definitions, float32 speed), in tiles that fit
    ``memory_budget`` bytes.

    Args:
        real: real features, shape (N, D): numpy array or torch tensor, float16/32/64 (or any
            real dtype that converts exactly, e.g. integers up to 2**53; lossy ones are refused).
        k: neighbourhood size; a radius is the distance to the k-th nearest other real sample.
        backend: "numpy", "torch", or "auto" (torch for torch tensors, numpy otherwise).
        device: torch device ("cpu", "cuda", "cuda:1"); implies the torch backend.
        memory_budget: bytes one tile may use. Each feature set in use (the real set, a generated
            set) also keeps up to this many bytes of float32 blocks for reuse, so the peak extra
            memory is about three budgets.
        tile_size: force the tile edge (for tests); results never depend on it.
        label: how errors name the real set (the CLI gives the file: ``"real features r.npz"``);
            :meth:`evaluate` takes the same for a generated set.

    Example:
        >>> import numpy as np
        >>> from rarity_score import RealManifold
        >>> real = np.array([[0.0], [1.0], [3.0], [7.0]])
        >>> manifold = RealManifold(real, k=1)
        >>> manifold.radii
        array([1., 1., 2., 4.])
        >>> manifold.score(np.array([[0.5], [6.0], [20.0]]))
        array([ 1.,  4., nan])
    """

    def __init__(
        self,
        real: Any,
        k: int = defaults.K,
        *,
        backend: str = defaults.BACKEND,
        device: str | None = None,
        memory_budget: int = defaults.MEMORY_BUDGET,
        tile_size: int | None = None,
        label: str = "real features",
    ) -> None:
        self._backend: Backend = select_backend(backend, device, real)
        self._label = label
        data = as_features(real, label, self._backend)
        self.k: int = check_k(k, data.shape[0])
        self.n_real: int = int(data.shape[0])
        self.dim: int = int(data.shape[1])
        self._memory_budget = memory_budget
        self._edge = tile_edge(memory_budget, tile_size)
        started = time.perf_counter()
        points = self._points_of(data, Frame.fit(self._backend, data), label)
        radii = knn_radii(points, self.k, self._edge)
        # Visiting spheres smallest first lets rarity stop at the first sphere that holds a sample;
        # equal radii keep input order, so ties go to the smaller index.
        order = np.argsort(radii, kind="stable")
        self._points = points.reordered(order)
        self._sorted_radii = radii[order]
        self.radii: np.ndarray = radii
        self.radii.flags.writeable = False
        logger.debug(
            "real manifold: %d x %d, k=%d, %.2fs",
            self.n_real,
            self.dim,
            self.k,
            time.perf_counter() - started,
        )

    def score(self, fake: Any, *, label: str = "fake features") -> np.ndarray:
        """Rarity score of each generated sample: float64, NaN where out of the manifold."""
        return self.evaluate(fake, metrics=("rarity",), label=label).rarity

    def evaluate(
        self, fake: Any, metrics: Iterable[str] | None = None, *, label: str = "fake features"
    ) -> Evaluation:
        """All asked-for metrics of a generated set, from one sweep over the real spheres.

        ``metrics`` is None (all) or a subset of ``defaults.METRICS``; rarity, in-manifold flags and
        the sphere index are always computed. Asking for rarity or precision alone lets the sweep
        stop early for samples already placed. ``label`` names the set in errors.
        """
        wanted = check_metrics(metrics)
        data = as_features(fake, label, self._backend)
        check_same_dim(self.dim, int(data.shape[1]), label)
        n_fake = int(data.shape[0])
        started = time.perf_counter()

        fake_radii = None
        if "recall" in wanted:
            fake_radii = self._fake_radii(data, label)
        fake = self._points_of(data, self._points.frame, label)
        spheres = SmallestSphere(self.n_real, n_fake)
        reducers: list[Reducer] = [spheres]
        counts = hits = nearest = realism = None
        if "density" in wanted or "coverage" in wanted:
            counts = RealSphereCounts(self.n_real, n_fake)
            reducers.append(counts)
        if fake_radii is not None:
            hits = FakeSphereHits(self.n_real)
            reducers.append(hits)
        if "nearest" in wanted:
            nearest = NearestReal(n_fake)
            reducers.append(nearest)
        if "realism" in wanted:
            realism = Realism(n_fake, self._points, self._sorted_radii)
            reducers.append(realism)
        sweep(
            self._points,
            fake,
            reducers,
            self._edge,
            row_radii=self._sorted_radii,
            col_radii=fake_radii,
        )

        rarity, in_manifold, sphere_index = spheres.result(self._sorted_radii, self._points.order)
        fields: dict[str, Any] = {}
        if "precision" in wanted:
            fields["precision"] = float(in_manifold.mean())
        if counts is not None:
            fields["sphere_count"] = counts.counts
            if "density" in wanted:
                fields["density"] = counts.density(self.k)
            if "coverage" in wanted:
                fields["coverage"] = counts.coverage()
        if "recall" in wanted:
            fields["recall"] = hits.recall() if hits is not None else float("nan")
        if nearest is not None:
            fields["nearest_real_index"], fields["nearest_real_distance"] = nearest.result(
                self._points, fake
            )
        if realism is not None:
            fields["realism"] = realism.result(self._points, fake)
        logger.debug(
            "evaluated %d generated samples (%s) in %.2fs",
            n_fake,
            ", ".join(wanted),
            time.perf_counter() - started,
        )
        return Evaluation(
            k=self.k,
            n_real=self.n_real,
            n_fake=n_fake,
            dim=self.dim,
            metrics=wanted,
            rarity=rarity,
            in_manifold=in_manifold,
            sphere_index=sphere_index,
            **fields,
        )

    def leave_one_out(self) -> Evaluation:
        """Rarity of each real sample against the other real samples' spheres (its own sphere left
        out; its neighbours' radii are those of the full set).

        This is the paper's way to compare the rarity of two datasets that share a concept: score
        each dataset against its own manifold this way, in one feature space, and compare the
        histograms. ``extra["method"]`` records it. A sample in no other sphere is out of the
        manifold (NaN), as for generated samples.
        """
        spheres = SmallestSphere(self.n_real, self.n_real)
        # Rows and columns are the same sorted set, so the masked diagonal is each own sphere.
        sweep(
            self._points,
            self._points,
            [spheres],
            self._edge,
            row_radii=self._sorted_radii,
            same_set=True,
        )
        by_position = spheres.result(self._sorted_radii, self._points.order)
        rarity, in_manifold, sphere_index = (
            _to_input_order(values, self._points.order) for values in by_position
        )
        return Evaluation(
            k=self.k,
            n_real=self.n_real,
            n_fake=self.n_real,
            dim=self.dim,
            metrics=("rarity",),
            rarity=rarity,
            in_manifold=in_manifold,
            sphere_index=sphere_index,
            extra={"method": "leave-one-out"},
        )

    def _fake_radii(self, data: Any, label: str) -> np.ndarray | None:
        """The generated samples' own k-NN radii (for recall), or None with a warning if too few."""
        n_fake = int(data.shape[0])
        if n_fake <= self.k:
            warnings.warn(
                f"recall needs more than k={self.k} generated samples (got {n_fake}); "
                "it is reported as NaN",
                stacklevel=3,
            )
            return None
        own = self._points_of(data, Frame.fit(self._backend, data), label)
        return knn_radii(own, self.k, self._edge)

    def _points_of(self, data: Any, frame: Frame, label: str) -> PointSet:
        return PointSet.build(
            self._backend,
            data,
            frame,
            cache_bytes=self._memory_budget,
            edge=self._edge,
            label=label,
        )


def _to_input_order(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Values listed by position (input row ``order[p]`` at position p), listed by input row."""
    out = np.empty_like(values)
    out[order] = values
    return out


def evaluate(
    real: Any,
    fake: Any,
    k: int = defaults.K,
    *,
    metrics: Iterable[str] | None = None,
    backend: str = defaults.BACKEND,
    device: str | None = None,
    memory_budget: int = defaults.MEMORY_BUDGET,
    tile_size: int | None = None,
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
    manifold = RealManifold(
        real,
        k,
        backend=backend,
        device=device,
        memory_budget=memory_budget,
        tile_size=tile_size,
    )
    return manifold.evaluate(fake, metrics=metrics)


def rarity_score(
    real: Any,
    fake: Any,
    k: int = defaults.K,
    *,
    backend: str = defaults.BACKEND,
    device: str | None = None,
    memory_budget: int = defaults.MEMORY_BUDGET,
    tile_size: int | None = None,
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
    manifold = RealManifold(
        real,
        k,
        backend=backend,
        device=device,
        memory_budget=memory_budget,
        tile_size=tile_size,
    )
    return manifold.score(fake)
