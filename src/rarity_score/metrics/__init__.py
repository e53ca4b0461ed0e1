"""The metrics: one module each, and the registry everything above loops over.

A metric module defines one :class:`~rarity_score.metrics.base.Metric` (what it needs from the
sweep, how it finishes, the columns and summary values it becomes); :data:`REGISTRY` lists each
once, in the order of the outputs. Adding a metric is writing its module and adding its line here:
the sweep (:mod:`rarity_score.manifold`), :class:`~rarity_score.results.Evaluation`, the results
directory and the report read the declarations and never name a metric.

Every function here reads :data:`REGISTRY` when called, so :func:`using` (tests, experiments)
adds a metric everywhere at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rarity_score.metrics.authenticity import AUTHENTICITY
from rarity_score.metrics.base import Column, Gallery, Metric, ReducerSpec, SetValue
from rarity_score.metrics.coverage import COVERAGE
from rarity_score.metrics.density import DENSITY
from rarity_score.metrics.nearest import NEAREST, NearestReal
from rarity_score.metrics.precision import PRECISION
from rarity_score.metrics.rarity import RARITY, SmallestSphere
from rarity_score.metrics.realism import REALISM, Realism
from rarity_score.metrics.recall import RECALL, FakeSphereHits
from rarity_score.metrics.sphere_counts import RealSphereCounts

__all__ = [
    "REGISTRY",
    "FakeSphereHits",
    "Metric",
    "NearestReal",
    "RealSphereCounts",
    "Realism",
    "SmallestSphere",
    "check_names",
    "columns_of",
    "computed_with",
    "galleries_of",
    "get",
    "names",
    "specs_of",
    "using",
    "values_of",
]

#: Every metric, in the order of ``Evaluation.metrics`` and of the outputs.
REGISTRY: tuple[Metric, ...] = (
    RARITY,
    PRECISION,
    RECALL,
    DENSITY,
    COVERAGE,
    REALISM,
    NEAREST,
    AUTHENTICITY,
)


def names() -> tuple[str, ...]:
    """The metric names, in registry order."""
    return tuple(metric.name for metric in REGISTRY)


def get(name: str) -> Metric:
    """The metric called ``name`` (a ValueError listing the valid names otherwise)."""
    for metric in REGISTRY:
        if metric.name == name:
            return metric
    check_names([name])
    raise AssertionError("unreachable")  # pragma: no cover


def check_names(metrics: str | Iterable[str] | None, *, option: str = "metrics") -> tuple[str, ...]:
    """The metrics asked for, in registry order, without repeats; None or ``"all"`` means all.

    The one check of metric names (``evaluate`` and the command line's ``--metrics`` call it). A
    string is a comma-separated list; names are read without case or surrounding spaces. Unknown
    names, or none at all, are a one-line ValueError naming ``option`` and the valid names.

    >>> check_names("nearest, RARITY")
    ('rarity', 'nearest')
    >>> check_names(["bogus"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: metrics: unknown metric bogus; choose from rarity, precision, ... or 'all'
    """
    valid = names()
    if metrics is None:
        return valid
    given = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    wanted = [str(name).strip().lower() for name in given]
    wanted = [name for name in wanted if name]
    if wanted == ["all"]:
        return valid
    choices = f"choose from {', '.join(valid)} or 'all'"
    unknown = [name for name in dict.fromkeys(wanted) if name not in valid]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(f"{option}: unknown metric{plural} {', '.join(unknown)}; {choices}")
    if not wanted:
        raise ValueError(f"{option}: no metric given; {choices}")
    return tuple(name for name in valid if name in wanted)


def computed_with(metric_names: Iterable[str]) -> tuple[Metric, ...]:
    """The metrics a sweep computes for these names: those asked and the ``always`` ones, in
    registry order."""
    asked = set(metric_names)
    return tuple(metric for metric in REGISTRY if metric.always or metric.name in asked)


def specs_of(metrics: Iterable[Metric]) -> tuple[ReducerSpec, ...]:
    """The reducer specs these metrics list, each once (a shared spec is built once), in the order
    they are first listed."""
    specs: dict[int, ReducerSpec] = {}
    for metric in metrics:
        for spec in metric.reducers:
            specs.setdefault(id(spec), spec)
    return tuple(specs.values())


def _table_order() -> list[Metric]:
    """The registry in per-sample table order: registry order, each metric that declares
    ``columns_before`` moved in front of that metric."""
    order = [metric for metric in REGISTRY if metric.columns_before is None]
    for metric in REGISTRY:
        if metric.columns_before is not None:
            target = [m.name for m in order].index(metric.columns_before)
            order.insert(target, metric)
    return order


def columns_of(metric_names: Iterable[str] | None = None) -> tuple[Column, ...]:
    """The per-sample columns written for these metrics (None: all), in table order, each once
    (columns shared by metrics, such as ``sphere_count``, are listed by each). Columns marked
    ``always_written`` come whatever is asked."""
    asked = set(names() if metric_names is None else metric_names)
    columns: dict[str, Column] = {}
    for metric in _table_order():
        for column in metric.columns:
            if metric.name in asked or (metric.always and column.always_written):
                columns.setdefault(column.name, column)
    return tuple(columns.values())


def values_of(metric_names: Iterable[str] | None = None) -> tuple[SetValue, ...]:
    """The per-set values of these metrics (None: all), in registry order: filter on
    ``in_row`` / ``in_table`` / ``in_text`` for the flat row and the tables."""
    asked = set(names() if metric_names is None else metric_names)
    return tuple(value for metric in REGISTRY if metric.name in asked for value in metric.values)


def galleries_of(metric_names: Iterable[str] | None = None) -> tuple[Gallery, ...]:
    """The galleries these metrics declare (None: all), in registry order."""
    asked = set(names() if metric_names is None else metric_names)
    return tuple(g for metric in REGISTRY if metric.name in asked for g in metric.galleries)


@contextmanager
def using(*extra: Metric) -> Iterator[tuple[Metric, ...]]:
    """Register ``extra`` metrics (after the others) for the duration of a ``with`` block: how
    tests try a metric before its line is added to :data:`REGISTRY`. A metric already registered
    stays where it is (so such a test keeps working once the line is added); another metric of a
    registered name is a ValueError. Not thread-safe: the registry is one module global.

    >>> from rarity_score.metrics.authenticity import AUTHENTICITY
    >>> with using(AUTHENTICITY):
    ...     "authenticity" in names()
    True
    """
    global REGISTRY
    saved = REGISTRY
    added: list[Metric] = []
    for metric in extra:
        if any(metric is known for known in (*saved, *added)):
            continue
        if metric.name in {known.name for known in (*saved, *added)}:
            raise ValueError(f"another metric is already registered as {metric.name!r}")
        added.append(metric)
    REGISTRY = (*saved, *added)
    try:
        yield REGISTRY
    finally:
        REGISTRY = saved
