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

The life of a metric in one evaluation:

1. the sweep builds each :class:`ReducerSpec` of the asked metrics once (``make``), feeds it every
   tile, and turns its state into named results (``finish``);
2. :attr:`Metric.compute` reads those results and returns the per-sample arrays (its
   :class:`Column` s) and what it keeps per set that the arrays cannot give (recall, coverage);
3. :attr:`Metric.summarize` makes its entry of :meth:`Evaluation.summary` from the arrays and
   that kept value (rarity's statistics, precision as the fraction in the manifold), so nothing
   derivable is stored; the :class:`SetValue` s pick numbers out of that entry for the flat
   summary row and the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from rarity_score.engine.points import PointSet
    from rarity_score.engine.sweep import Reducer

__all__ = [
    "Column",
    "Computed",
    "Finished",
    "Gallery",
    "Metric",
    "ReducerSpec",
    "Section",
    "SetValue",
    "SweepContext",
    "find",
    "format_value",
    "quantile_name",
    "scalar",
]

#: How a per-sample column is stored and shown. ``"index"``: a row of the reference set (the real
#: set, or the set itself in leave-one-out), -1 for none; its CSV gets a companion name column.
ColumnKind = Literal["float", "int", "bool", "index"]

#: How a per-set value is shown: a count, a fraction (printed as a percentage where the table
#: says so), or a plain number.
ValueKind = Literal["count", "fraction", "number"]

#: The numpy dtype of each column kind (what :class:`~rarity_score.results.Evaluation` holds).
DTYPES: dict[str, type] = {
    "float": np.float64,
    "int": np.int64,
    "bool": np.bool_,
    "index": np.int64,
}


@dataclass(frozen=True)
class SweepContext:
    """What the reducers and the finishing step of one sweep may read.

    Positions are those of the sweep: real samples sorted by radius (``real.order[p]`` is the
    input row at position p), generated samples in input order (in leave-one-out, the real set
    again, sorted: ``fake.order`` maps those positions back to input rows).
    """

    k: int
    real: PointSet
    fake: PointSet
    #: Real k-NN radii by position (increasing), original units.
    sorted_radii: np.ndarray
    #: Distance of each real sample to its nearest *other* real sample, by position (exact, as
    #: the radii; 0 for a sample with a duplicate).
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
    ``finish(reducer, context)`` turns its final state into named results (per-sample arrays by
    sweep position of the generated samples, per-real arrays, or plain numbers), which
    :attr:`Metric.compute` reads by name. Names are unique across specs.
    """

    name: str
    make: Callable[[SweepContext], Reducer]
    finish: Callable[[Any, SweepContext], Mapping[str, Any]]
    #: The reducer reads the generated samples' own k-NN radii (recall). When there are at most k
    #: generated samples they do not exist: the spec is not built and its metric reports NaN.
    needs_fake_radii: bool = False


#: The named results of every reducer of a sweep, merged (names are unique across specs). A spec
#: that could not be built (see :attr:`ReducerSpec.needs_fake_radii`) has no names in it.
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
    #: Written whatever metrics were asked for (``in_manifold``: every output says which samples
    #: the manifold holds, since every score rests on it). Only for a :attr:`Metric.always` metric.
    always_written: bool = False


@dataclass(frozen=True)
class SetValue:
    """A per-set value: a column of ``summary.csv`` / ``summary.json`` and of the printed and
    report tables. ``path`` finds it in :meth:`Evaluation.summary` (``("rarity", "median")``)."""

    key: str
    heading: str
    path: tuple[str, ...]
    kind: ValueKind = "number"
    #: Shown in the printed table comparing sets (summary files always hold every in-row value).
    in_table: bool = True
    #: A column of the flat summary row (``summary.csv`` / ``summary.json``, the report's table).
    #: False: shown only in the printed summary of one set (realism's mean, which the summary
    #: files have never held).
    in_row: bool = True
    #: A line of the printed summary of one set (:func:`rarity_score.results.format_summary`),
    #: unless the metric prints a :attr:`Metric.section` of its own.
    in_text: bool = True
    #: Printed there when it is 0 (False: a count worth a line only when there is something).
    text_when_zero: bool = True

    def find(self, summary: Mapping[str, Any]) -> Any:
        """This value in a :meth:`Evaluation.summary`, or None where its path ends early (the
        metric was not computed, or the value does not apply)."""
        return find(summary, self.path)


def find(tree: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    """The value at ``path`` in nested mappings (a summary, or its intervals), or None where the
    path ends early.

    >>> find({"rarity": {"median": 1.5}}, ("rarity", "median")), find({}, ("rarity", "n"))
    (1.5, None)
    """
    found: Any = tree
    for key in path:
        if not isinstance(found, Mapping):
            return None
        found = found.get(key)
    return found


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
class Computed:
    """What :attr:`Metric.summarize` reads: the evaluation's per-sample arrays (by column name,
    one entry per generated sample), what :attr:`Metric.compute` kept per set for this metric
    (None if nothing), k, and the quantiles asked of :meth:`Evaluation.summary`."""

    k: int
    columns: Mapping[str, np.ndarray]
    kept: Any
    quantiles: tuple[float, ...]


#: A titled block of ``(label, value)`` lines in the printed summary of one set.
Section = tuple[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class Metric:
    """One metric: its name, what it needs from the sweep, how it finishes, what it outputs.

    ``compute(finished, context)`` returns ``(per_sample, kept)``: per-sample arrays by
    :attr:`Column.name` (one entry per generated sample, by sweep position) and what this metric
    keeps per set that its arrays cannot give (a number, or None), held in
    :attr:`Evaluation.values` under ``name``.

    ``summarize(computed)`` makes this metric's entry of :meth:`Evaluation.summary` (a number, a
    dict of numbers, or None when its arrays are missing); without it the entry is the kept value.
    Only metrics with :attr:`values` have an entry in the summary.
    """

    name: str
    description: str
    reducers: tuple[ReducerSpec, ...]
    compute: Callable[[Finished, SweepContext], tuple[dict[str, np.ndarray], Any]]
    columns: tuple[Column, ...] = ()
    values: tuple[SetValue, ...] = ()
    galleries: tuple[Gallery, ...] = ()
    summarize: Callable[[Computed], Any] | None = None
    #: Its own block of the printed summary of one set, from its summary entry (rarity's
    #: statistics); without it the metric's in-text values go to the common block.
    section: Callable[[Any], Section] | None = None
    #: Computed in a leave-one-out sweep of a set against itself (only rarity today).
    in_leave_one_out: bool = False
    #: Computed in every sweep, asked or not (rarity: the in-manifold flags every score rests on,
    #: and the early stop of the sweep). Its outputs are written only when asked, except the
    #: columns marked :attr:`Column.always_written`.
    always: bool = False
    #: Its columns come before those of the named metric in the per-sample table (nearest's before
    #: realism's, the table's order since it exists) instead of in registry order.
    columns_before: str | None = None


def format_value(value: Any, kind: ValueKind = "number") -> str:
    """A per-set value as printed: ``n/a`` when missing, a count as a whole number, anything else
    with 6 significant digits.

    >>> format_value(None), format_value(3, "count"), format_value(0.123456789)
    ('n/a', '3', '0.123457')
    """
    if value is None:
        return "n/a"
    if kind == "count":
        return str(int(value))
    return f"{value:.6g}"


def quantile_name(q: float) -> str:
    """The summary key of a quantile: ``0.1 -> "q10"``, ``0.025 -> "q2.5"``.

    >>> [quantile_name(q) for q in (0.1, 0.25, 0.5, 0.025)]
    ['q10', 'q25', 'q50', 'q2.5']
    """
    return "q" + f"{round(q * 100, 6):g}"


def scalar(value: object) -> float | None:
    """A plain float, or None for a missing or NaN value (summaries never hold NaN)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if np.isnan(number) else number
