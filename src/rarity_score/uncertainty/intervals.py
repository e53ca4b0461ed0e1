"""Percentile-bootstrap intervals of the summary of one evaluation, without another sweep.

A resample draws the generated samples with replacement (as many as there are) and recomputes
:meth:`~rarity_score.results.Evaluation.summary` from their per-sample values; the interval of
each value is the percentile interval of those recomputed values (``scipy.stats.bootstrap``,
``method="percentile"``). The real set and its spheres are fixed. Cost: ``B`` summaries of M
samples (sorting for the medians and quantiles), no distance computed.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from rarity_score import defaults, metrics
from rarity_score._errors import MissingDependency, require
from rarity_score.metrics.base import find
from rarity_score.options import StatisticsOptions
from rarity_score.results import Evaluation

__all__ = [
    "RESAMPLED",
    "Analysis",
    "StabilityStep",
    "not_resampled",
    "require_scipy",
    "statistics_record",
    "summary_intervals",
]

#: What a bootstrap interval of this package covers, in the words every output records.
RESAMPLED = (
    "the samples of each set (the rows of its per-sample table), drawn with replacement, as many "
    "as the set has, each resample's summary recomputed from the per-sample values; the "
    "reference samples and their k-NN spheres (the real set, or in leave-one-out the set's own "
    "spheres) stay fixed, so an interval covers the random draw of the samples scored, not the "
    "draw of the reference set (see --stability for that)"
)

#: The counts and settings of a summary: fixed by the run, never resampled.
_FIXED = frozenset(
    {"k", "n_real", "n_fake", "dim", "metrics", "n_in_manifold", "n_out_of_manifold"}
)

#: Statistics of a metric's entry the percentile bootstrap cannot bound: a resample never
#: exceeds the sample's own extremes, so their "interval" would end at the value itself.
_EXTREMES = frozenset({"min", "max"})


def require_scipy(what: str = "--bootstrap") -> ModuleType:
    """``scipy.stats``, or a one-line :class:`~rarity_score._errors.MissingDependency` naming
    ``what`` and the extra to install (also for a scipy older than 1.15, whose bootstrap has no
    ``rng=``)."""
    package = "scipy 1.15 or later"
    stats = require("scipy.stats", what=what, package=package, extra="stats")
    import scipy

    major, minor = (int(part) for part in re.findall(r"\d+", scipy.__version__)[:2])
    if (major, minor) < (1, 15):
        raise MissingDependency(
            f"{what} needs {package} (found {scipy.__version__}): pip install 'rarity-score[stats]'"
        )
    return stats


def not_resampled(metric_names: Sequence[str] | None = None) -> dict[str, str]:
    """The metrics (of ``metric_names``; None: all) whose summary value gets no interval, with
    why: a value the sweep keeps per set (:attr:`~rarity_score.metrics.base.Metric.summarize`
    None) rests on the generated set as a whole, which resampling per-sample values cannot redo.

    >>> sorted(not_resampled())
    ['coverage', 'recall']
    """
    asked = set(metrics.names() if metric_names is None else metric_names)
    why = (
        "no interval: a per-set value of the sweep that rests on the generated set as a whole "
        "(its own k-NN spheres, or each real sample's nearest generated sample), which a "
        "resample of the per-sample values cannot recompute; recomputing it would cost one "
        "sweep per resample, and the copies a resample repeats would shrink the generated "
        "set's own k-NN radii (to 0 for a sample drawn k times), so such an interval would not "
        "be of the value reported"
    )
    return {
        metric.name: why
        for metric in metrics.REGISTRY
        if metric.name in asked and metric.values and metric.summarize is None
    }


def _resampled(value: Any) -> bool:
    """A leaf of a summary that a resample changes: a number (or a value undefined here), not a
    count (summaries hold counts as ints, every other value as a float)."""
    return value is None or (isinstance(value, float) and not isinstance(value, bool))


def _paths(summary: Mapping[str, Any], skip: set[str]) -> Iterator[tuple[str, ...]]:
    """The paths of the resampled numeric leaves of a summary."""
    for key, value in summary.items():
        if key in _FIXED or key in skip:
            continue
        if isinstance(value, Mapping):
            for inner, item in value.items():
                if _resampled(item) and inner not in _EXTREMES:
                    yield (key, str(inner))
        elif _resampled(value):
            yield (key,)


def _with_fraction_in(summary: dict[str, Any]) -> dict[str, Any]:
    n = summary["n_fake"]
    summary["fraction_in_manifold"] = summary["n_in_manifold"] / n if n else None
    return summary


def summary_intervals(
    evaluation: Evaluation,
    options: StatisticsOptions,
    quantiles: Sequence[float] = defaults.QUANTILES,
) -> dict[str, Any]:
    """The percentile-bootstrap interval of every resampled value of ``evaluation.summary()``
    (plus ``fraction_in_manifold``), in a dict of the same shape: ``[low, high]`` per value,
    None where a value has no interval (undefined in some resample, e.g. the median of a
    resample with no sample in the manifold; or a metric of :func:`not_resampled`, whose entry
    is None; or a set of fewer than ``defaults.MIN_BOOTSTRAP_SAMPLES`` samples, whose
    resamples would only shuffle a handful of values). Counts and settings are left out.
    ``options.bootstrap`` resamples, level ``options.level``, seeded by ``options.seed``.

    >>> ev = Evaluation.from_fields(k=1, n_real=9, dim=1, metrics=("rarity",),
    ...     rarity=np.linspace(1.0, 2.0, 50), in_manifold=np.ones(50, bool),
    ...     sphere_index=np.zeros(50, int))
    >>> ci = summary_intervals(ev, StatisticsOptions(bootstrap=200))
    >>> low, high = ci["rarity"]["median"]
    >>> 1.3 < low < 1.5 < high < 1.7, ci["fraction_in_manifold"]
    (True, [1.0, 1.0])
    """
    stats = require_scipy()
    point = _with_fraction_in(evaluation.summary(quantiles))
    skip = set(not_resampled(evaluation.metrics))
    paths = list(_paths(point, skip))
    out: dict[str, Any] = {name: None for name in skip if name in point}
    n = evaluation.n_fake
    if n < defaults.MIN_BOOTSTRAP_SAMPLES or not paths:
        for path in paths:
            _put(out, path, None)
        return out
    columns = {name: np.asarray(values) for name, values in evaluation.columns.items()}

    def statistic(rows: np.ndarray) -> np.ndarray:
        resampled = replace(evaluation, columns={k: v[rows] for k, v in columns.items()})
        summary = _with_fraction_in(resampled.summary(quantiles))
        found = (find(summary, path) for path in paths)
        return np.array([np.nan if value is None else float(value) for value in found])

    result = bootstrap(stats, (np.arange(n),), statistic, options)
    low = np.atleast_1d(result.confidence_interval.low)
    high = np.atleast_1d(result.confidence_interval.high)
    for path, lo, hi in zip(paths, low, high, strict=True):
        interval = None if np.isnan(lo) or np.isnan(hi) else [float(lo), float(hi)]
        _put(out, path, interval)
    return out


def bootstrap(
    stats: ModuleType, rows: tuple[np.ndarray, ...], statistic: Any, options: StatisticsOptions
) -> Any:
    """The one call of ``scipy.stats.bootstrap`` (percentile method, seeded, one call of
    ``statistic`` per resample, on rows of the samples: each sample of ``rows`` resampled
    independently)."""
    # Resamples in batches of about 4 M indices, so memory stays bounded whatever B and n.
    batch = max(1, 2**22 // max(len(r) for r in rows))
    with warnings.catch_warnings():
        # A value that every resample gives alike (a fraction of 1) has a point as its
        # interval, which is the answer, not a problem of the data.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        return stats.bootstrap(
            rows,
            statistic,
            n_resamples=options.bootstrap,
            confidence_level=options.level,
            method="percentile",
            vectorized=False,
            batch=batch,
            rng=np.random.default_rng(options.seed),
        )


def _put(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = out
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def statistics_record(options: StatisticsOptions, metric_names: Sequence[str]) -> dict[str, Any]:
    """What ``run.json["statistics"]`` records of a run's options: the bootstrap (resamples,
    level, seed, method, :data:`RESAMPLED`, the values without an interval and why), the subset
    size and the stability fractions; None for each part that was not asked for."""
    bootstrap = None
    if options.intervals:
        bootstrap = {
            "method": "percentile bootstrap (scipy.stats.bootstrap)",
            "resamples": options.bootstrap,
            "level": options.level,
            "seed": options.seed,
            "resampled": RESAMPLED,
            "no_interval": not_resampled(metric_names),
        }
    subsample = None
    if options.subsample is not None:
        subsample = {
            "n": options.subsample,
            "seed": options.seed,
            "how": "each set (the real set too) larger than n is replaced by n of its samples, "
            "drawn without replacement from the seed and the set's name",
        }
    stability = None
    if options.stability:
        stability = {
            "fractions": list(defaults.STABILITY_FRACTIONS),
            "seed": options.seed,
            "how": "the run repeated with the reference set replaced by a random subset of "
            "each fraction of its samples (the generated sets whole)",
        }
    return {"bootstrap": bootstrap, "subsample": subsample, "stability": stability}


@dataclass(frozen=True)
class StabilityStep:
    """The run repeated with the reference set cut to ``fraction`` of its samples: one
    evaluation per set (each records its reference size as ``n_real``)."""

    fraction: float
    evaluations: tuple[Evaluation, ...]


@dataclass(frozen=True)
class Analysis:
    """What a run computed beyond its evaluations, for the results directory to write.

    ``intervals[i]``: :func:`summary_intervals` of set i (None without ``--bootstrap``);
    ``comparisons``: the pairs of sets (:func:`~rarity_score.uncertainty.comparisons`), as
    dicts; ``stability``: per fraction of the reference set, the summary rows of every set
    (None without ``--stability``); ``record``: :func:`statistics_record`.
    """

    intervals: tuple[dict[str, Any] | None, ...] = ()
    comparisons: tuple[dict[str, Any], ...] = ()
    stability: tuple[StabilityStep, ...] | None = None
    record: dict[str, Any] = field(default_factory=dict)
