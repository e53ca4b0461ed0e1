"""The columns and headings of a results directory, read from the metric declarations.

Per sample, a set's table and arrays hold the :class:`~rarity_score.metrics.base.Column` s of its
evaluation, each ``"index"`` column with a companion column naming the referenced sample
(:attr:`~rarity_score.metrics.base.Column.names_column`). Per set, a summary row holds the set's
name, the counts of the manifold (the format's own values: every score rests on them), then the
:class:`~rarity_score.metrics.base.SetValue` s of every registered metric; the printed table, the
Markdown summary and the report's summary table show those values under their one heading.

The registry is imported when first needed, not with this module: the metric modules define
their reducers over the engine, which a reader of results directories (the report) never loads.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rarity_score import defaults
from rarity_score.io.names import printable
from rarity_score.io.run_record import COMPARABILITY

if TYPE_CHECKING:
    from types import ModuleType

    from rarity_score.metrics.base import Column, SetValue
    from rarity_score.results import Evaluation

__all__ = [
    "ci_key",
    "column_declarations",
    "format_table",
    "interval_cells",
    "interval_columns",
    "markdown",
    "row_values",
    "run_text",
    "stability_table",
    "statistics_text",
    "summary_columns",
    "summary_row",
    "table_values",
    "value_text",
    "with_interval",
]

#: The format's own per-set value shown as a percentage in the tables (the other fractions, like
#: precision, are shown as numbers, as they always were).
_PERCENT = frozenset({"fraction_in_manifold"})

_WIDTH = 88  # wrap width of printed prose


def registry() -> ModuleType:
    """:mod:`rarity_score.metrics`, imported when first used (see the module's documentation)."""
    from rarity_score import metrics

    return metrics


def _counts() -> tuple[SetValue, ...]:
    """The counts of the manifold that lead every summary row, whatever the metrics."""
    from rarity_score.metrics.base import SetValue

    return (
        SetValue("n", "n", ("n_fake",), "count"),
        SetValue("n_in_manifold", "in manifold", ("n_in_manifold",), "count"),
        SetValue("fraction_in_manifold", "fraction in", ("fraction_in_manifold",), "fraction"),
        SetValue(
            "n_out_of_manifold", "out of manifold", ("n_out_of_manifold",), "count", in_table=False
        ),
    )


def row_values() -> tuple[SetValue, ...]:
    """The values of a summary row after its ``name``, in column order: the counts, then each
    registered metric's values that belong in the row."""
    return (*_counts(), *(value for value in registry().values_of() if value.in_row))


def summary_columns() -> tuple[str, ...]:
    """The columns of ``summary.csv`` (and keys of each row of ``summary.json``), in order."""
    return ("name", *(value.key for value in row_values()))


def table_values(mode: str) -> tuple[SetValue, ...]:
    """The values the printed and Markdown tables show: those marked ``in_table``; in
    ``datasets`` mode only the counts and the values of the metrics a leave-one-out sweep
    computes (there is no reference set for the others)."""
    metrics = registry()
    if mode == "datasets":
        shown = metrics.values_of([m.name for m in metrics.REGISTRY if m.in_leave_one_out])
    else:
        shown = metrics.values_of()
    return tuple(v for v in (*_counts(), *shown) if v.in_table and v.in_row)


def column_declarations() -> dict[str, Column]:
    """Every registered per-sample column by name, in table order."""
    return {column.name: column for column in registry().columns_of()}


def summary_row(
    name: str, evaluation: Evaluation, intervals: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The summary row of one set: its name (already :func:`~rarity_score.io.names.printable`)
    and each of :func:`row_values`, found in :meth:`Evaluation.summary` by its path (None where
    the metric was not computed or the value does not apply). With ``intervals`` (the
    bootstrap's, :func:`rarity_score.uncertainty.summary_intervals`), each value that is not a
    count is followed by ``<key>_ci``: ``[low, high]``, or None where it has no interval."""
    summary = dict(evaluation.summary())
    n, n_in = int(summary["n_fake"]), int(summary["n_in_manifold"])
    summary["fraction_in_manifold"] = n_in / n if n else None
    row: dict[str, Any] = {"name": name}
    for value in row_values():
        found = value.find(summary)
        row[value.key] = int(found) if found is not None and value.kind == "count" else found
        if intervals is not None and value.kind != "count":
            row[ci_key(value.key)] = value.find(intervals)
    return row


def ci_key(key: str) -> str:
    """The key of a value's interval in a summary row: ``rarity_median -> rarity_median_ci``."""
    return f"{key}_ci"


def interval_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns ``summary.csv`` adds for the intervals the rows hold (``<key>_ci_low``,
    ``<key>_ci_high``, in row order); none without intervals."""
    held = {key for row in rows for key in row}
    keys = [value.key for value in row_values() if ci_key(value.key) in held]
    return tuple(f"{ci_key(key)}_{end}" for key in keys for end in ("low", "high"))


def interval_cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``summary.csv`` cells of a row's intervals (see :func:`interval_columns`)."""
    cells: dict[str, Any] = {}
    for value in row_values():
        interval = row.get(ci_key(value.key))
        if ci_key(value.key) in row:
            low, high = interval if interval is not None else (None, None)
            cells[f"{ci_key(value.key)}_low"] = low
            cells[f"{ci_key(value.key)}_high"] = high
    return cells


def value_text(value: Any, spec: SetValue, *, missing: str = "n/a", grouping: bool = False) -> str:
    """A per-set value as the tables show it: ``missing`` when there is none, a count as a whole
    number (with thousands separators when ``grouping``), the fraction in the manifold as a
    percentage, anything else with 4 significant digits."""
    if value is None:
        return missing
    if spec.kind == "count":
        return f"{int(value):,}" if grouping else str(int(value))
    if spec.key in _PERCENT:
        return f"{100 * float(value):.1f} %"
    return f"{float(value):.4g}"


def with_interval(text: str, row: Mapping[str, Any], spec: SetValue) -> str:
    """A value's text followed by its interval when the row holds one (``1.25 [1.1, 1.4]``)."""
    interval = row.get(ci_key(spec.key))  # [low, high] or None (the reader checks a file's)
    if interval is None:
        return text
    low, high = (value_text(end, spec) for end in interval)
    if spec.key in _PERCENT:
        low, high = low.removesuffix(" %"), high.removesuffix(" %")
    return f"{text} [{low}, {high}]"


def format_table(rows: Sequence[Mapping[str, Any]], mode: str = "compare") -> str:
    """The summary rows as an aligned text table (what ``rarity compare`` prints); rarity
    statistics are over in-manifold samples; ``datasets`` mode has no precision .. coverage.
    A value with a bootstrap interval in the row is followed by it in brackets.

    >>> rows = [{"name": "a", "n": 4, "n_in_manifold": 3, "fraction_in_manifold": 0.75,
    ...          "rarity_mean": 1.5, "rarity_median": 1.25, "rarity_q10": 1.0, "rarity_q90": 2.0}]
    >>> print(format_table(rows, "datasets"), end="")
    set  n  in manifold  fraction in  mean  median  q10  q90
    a    4            3       75.0 %   1.5    1.25    1    2
    """
    values = table_values(mode)
    table = [["set", *(value.heading for value in values)]]
    for row in rows:
        name = printable(str(row["name"]))
        cells = [with_interval(value_text(row.get(v.key), v), row, v) for v in values]
        table.append([name, *cells])
    return "\n".join(_aligned(table)) + "\n"


def _aligned(table: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _extractor_text(run: Mapping[str, Any]) -> str:
    extractor = run.get("extractor") or {}
    dim = f" ({run['dim']}-d)" if run.get("dim") is not None else ""  # an older record: unknown
    return f"{extractor.get('name') or 'unknown (precomputed features)'}{dim}"


def markdown(rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]) -> str:
    """``summary.md``: the run's settings and the summary table in Markdown."""
    lines = [
        "# Rarity score: summary",
        "",
        f"- method: {run['method']}",
        f"- k: {run['k']}",
        f"- feature extractor: {_extractor_text(run)}",
    ]
    if run.get("real"):
        lines.append(
            f"- real set: {_md_escape(run['real']['source'])} ({run['real']['n']} samples)"
        )
    lines += ["- rarity statistics are over in-manifold samples only", ""]
    values = table_values(str(run["mode"]))
    lines.append("| " + " | ".join(["set", *(value.heading for value in values)]) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * len(values)) + "|")
    for row in rows:
        cells = [_md_escape(str(row["name"]))]
        cells += [with_interval(value_text(row.get(v.key), v), row, v) for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>|])", r"\\\1", text)


def statistics_text(
    run: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]] = (),
    stability: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The printed lines of a run's analyses: what its intervals cover, the comparisons of the
    sets (one sentence each), the stability table; empty when the run has none."""
    parts: list[str] = []
    record = run.get("statistics") if isinstance(run.get("statistics"), Mapping) else {}
    bootstrap = record.get("bootstrap") if isinstance(record, Mapping) else None
    if isinstance(bootstrap, Mapping) and isinstance(bootstrap.get("resamples"), int):
        level = bootstrap.get("level")
        shown = f"{100 * float(level):g} %" if isinstance(level, (int, float)) else "the"
        text = (
            f"Intervals in brackets: {shown} percentile bootstrap over "
            f"{bootstrap.get('resamples')} resamples of each set's samples, the reference set "
            "and its k-NN spheres fixed: they cover the draw of the samples scored "
            "(run.json, statistics)."
        )
        missing = bootstrap.get("no_interval")
        if isinstance(missing, Mapping) and missing:
            names = ", ".join(str(name) for name in missing)
            text += f" No interval for {names}: they rest on the generated set as a whole."
        text += (
            f" Nor for the min and max (a resample never passes them), nor for a set of fewer "
            f"than {defaults.MIN_BOOTSTRAP_SAMPLES} samples."
        )
        parts.append(textwrap.fill(text, width=_WIDTH))
    if comparisons:
        lines = ["Comparisons (differences of rarity, first set minus second; Mann-Whitney U):"]
        lines += [f"  {printable(str(entry.get('sentence')))}" for entry in comparisons]
        parts.append("\n".join(lines))
    if stability:
        parts.append(stability_table(stability, str(run.get("mode"))))
    return "".join(part + "\n\n" for part in parts)


def stability_table(stability: Sequence[Mapping[str, Any]], mode: str) -> str:
    """``--stability`` as a table: per set and fraction of the reference set, its size and the
    values of :func:`table_values`."""
    values = [v for v in table_values(mode) if v.kind != "count"]
    head = ["set", "reference", "n ref", *(value.heading for value in values)]
    found: list[tuple[int, float, list[str]]] = []  # (set's position in the run, fraction, cells)
    for step in stability:
        fraction = float(step.get("fraction") or 0)
        for position, row in enumerate(step.get("sets") or ()):
            cells = [printable(str(row.get("name"))), f"{100 * fraction:g} %"]
            cells.append(str(row.get("n_reference")))
            cells += [value_text(row.get(value.key), value) for value in values]
            found.append((position, fraction, cells))
    found.sort(key=lambda item: (item[0], item[1]))  # by set in run order, fractions in order
    table = [head, *(cells for _, _, cells in found)]
    lines = ["Stability: the run repeated with a random part of the reference set"]
    lines += [f"  {line}" for line in _aligned(table)]
    lines.append(
        textwrap.fill(
            "Rarity values shrink as the reference set grows (k-NN radii do); what matters is "
            "whether the order of the sets and the fractions in the manifold hold.",
            width=_WIDTH,
        )
    )
    return "\n".join(lines)


def run_text(
    run: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]] = (),
    stability: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """What ``rarity compare``, ``rarity datasets`` and ``rarity report`` print: the method, the
    settings, the summary table (with intervals when the run has them), the run's analyses
    (:func:`statistics_text`) and the notes."""
    lines = [
        f"Method: {run['method']}",
        f"k = {run['k']}; feature extractor: {_extractor_text(run)}",
    ]
    if run.get("real"):
        lines.append(f"Real set: {run['real']['source']} ({run['real']['n']} samples)")
    note = (
        "Rarity statistics are over in-manifold samples only; a sample in no sphere has no "
        "score and counts as out of the manifold. "
    )
    if run["mode"] == "datasets":
        metrics = registry()
        absent = [
            m.name
            for m in metrics.REGISTRY
            if not m.in_leave_one_out and any(v.in_row for v in m.values)
        ]
        note += (
            "Each dataset is scored against its own manifold with its own sphere left out "
            "(leave-one-out)"
        )
        if absent:
            listed = " and ".join(
                [", ".join(absent[:-1]), absent[-1]] if len(absent) > 1 else absent
            )
            note += f", so {listed} do not apply"
        note += ". "
    table = format_table(rows, str(run["mode"]))
    return (
        "\n".join(lines)
        + "\n\n"
        + table
        + "\n"
        + statistics_text(run, comparisons, stability)
        + textwrap.fill(note + COMPARABILITY, width=_WIDTH)
        + "\n"
    )
