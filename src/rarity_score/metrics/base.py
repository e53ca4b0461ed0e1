"""What a metric declares: the reducers it needs, how it finishes, and the outputs it becomes.

A metric is one module of :mod:`rarity_score.metrics` that defines one :class:`Metric` value and
is listed once in :data:`rarity_score.metrics.REGISTRY`. Everything above (the sweep set-up in
:mod:`rarity_score.manifold`, :class:`~rarity_score.results.Evaluation`, the results directory,
the printed tables and the report) loops over the registry and reads these declarations; none of
them names a metric.

Reducers that several metrics share (the smallest-sphere search gives rarity and precision; one
count of real spheres gives density and coverage; the nearest real sample serves ``nearest`` and
``authenticity``) are declared once as a :class:`ReducerSpec` in the module that defines the
reducer and listed by every metric that needs them: a sweep builds each spec once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from rarity_score.engine.points import PointSet
    from rarity_score.engine.sweep import Reducer

__all__ = [
    "Column",
    "Finished",
    "Gallery",
    "Metric",
    "ReducerSpec",
    "SetValue",
    "SweepContext",
]

#: How a per-sample column is stored and shown. ``"index"``: a row of the reference set (the real
#: set, or the set itself in leave-one-out), -1 for none; its CSV gets a companion name column.
ColumnKind = Literal["float", "int", "bool", "index"]

#: How a per-set value is shown: a count, a fraction (printed as a percentage where the table
#: says so), or a plain number.
ValueKind = Literal["count", "fraction", "number"]


@dataclass(frozen=True)
class SweepContext:
    """What the reducers and the finishing step of one sweep may read.

    Positions are those of the sweep: real samples sorted by radius (``real.order[p]`` is the
    input row at position p), generated samples in input order.
    """

    k: int
    real: PointSet
    fake: PointSet
    #: Real k-NN radii by position (increasing), original units.
    sorted_radii: np.ndarray
    #: Distance of each real sample to its nearest *other* real sample, by position.
    real_nearest_distance: np.ndarray
    #: The generated samples' own k-NN radii by input row, or None when no metric asked for them
    #: (or there are too few generated samples; see :attr:`ReducerSpec.needs_fake_radii`).
    fake_radii: np.ndarray | None
    #: Rows and columns are one set (leave-one-out).
    same_set: bool = False


@dataclass(frozen=True)
class ReducerSpec:
    """A reducer the sweep builds once for all metrics that list it.

    ``make(context)`` returns a fresh reducer (:class:`rarity_score.engine.sweep.Reducer`) and
    ``finish(reducer, context)`` turns its final state into named results (arrays by input row,
    or plain numbers), which :attr:`Metric.compute` reads by name.
    """

    name: str
    make: Callable[[SweepContext], Reducer]
    finish: Callable[[Any, SweepContext], Mapping[str, Any]]
    #: The reducer reads the generated samples' own k-NN radii (recall). When there are at most k
    #: generated samples they do not exist: the spec is not built and its metric reports NaN.
    needs_fake_radii: bool = False


#: The named results of every reducer of a sweep, merged (names are unique across specs).
Finished = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """A per-sample output: an array in :class:`~rarity_score.results.Evaluation`, a column of
    the per-sample CSV, an array of the ``.npz``, a list in JSON, a column of the report's table.
    """

    name: str
    #: Heading in the report's table and in printed output.
    heading: str
    kind: ColumnKind
    #: One sentence for ``--help``, the README's table and the report's tooltips.
    description: str = ""
    #: Missing (empty CSV cell, JSON null) for samples outside the manifold (rarity, sphere).
    only_in_manifold: bool = False
    #: For ``"index"`` columns: the CSV column that names the referenced sample.
    names_column: str | None = None
    #: Values may be +inf (realism): JSON then gets ``<name>_infinite`` flags beside the nulls.
    may_be_infinite: bool = False


@dataclass(frozen=True)
class SetValue:
    """A per-set value: a column of ``summary.csv`` / ``summary.json`` and of the printed and
    report tables. ``path`` finds it in :meth:`Evaluation.summary` (``("rarity", "median")``)."""

    key: str
    heading: str
    path: tuple[str, ...]
    kind: ValueKind = "number"
    #: Shown in the printed table (summary files always hold every value).
    in_table: bool = True


@dataclass(frozen=True)
class Gallery:
    """Samples a metric flags, which the report shows as a gallery without knowing the metric:
    the samples whose ``column`` equals ``value``, in increasing order of ``order_by`` (input
    order when None)."""

    title: str
    caption: str
    column: str
    value: bool | int | float
    order_by: str | None = None


@dataclass(frozen=True)
class Metric:
    """One metric: its name, what it needs from the sweep, how it finishes, what it outputs.

    ``compute(finished, context)`` returns ``(per_sample, per_set)``: per-sample arrays by
    :attr:`Column.name` (one entry per generated sample, input order) and this metric's entry of
    :meth:`Evaluation.summary` (a number, a dict of numbers, or None), stored under ``name``.
    """

    name: str
    description: str
    reducers: tuple[ReducerSpec, ...]
    compute: Callable[[Finished, SweepContext], tuple[dict[str, np.ndarray], Any]]
    columns: tuple[Column, ...] = ()
    values: tuple[SetValue, ...] = ()
    galleries: tuple[Gallery, ...] = ()
    #: Computed in a leave-one-out sweep of a set against itself (only rarity today).
    in_leave_one_out: bool = False
