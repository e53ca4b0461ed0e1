"""Per-sample results of one evaluation, their summaries, and writing them to CSV / JSON.

Missing values
--------------
A generated sample outside every real k-NN sphere is *out of the manifold* and has no rarity
score. In arrays it is NaN (with ``in_manifold`` False and ``sphere_index`` -1); in CSV files its
``rarity`` and ``sphere_index`` cells are empty; in JSON it is ``null``. It is never written as 0
and never dropped: every output has one entry per generated sample.

JSON has no NaN or infinity. :meth:`Evaluation.to_dict` therefore writes every non-finite float as
``null`` and, where a column can be legitimately infinite (the realism score of a generated sample
that coincides with a real sample of a pruned sphere, ``d(r, g) = 0``), adds an explicit boolean
flag list ``<column>_infinite`` (``realism_infinite``) so that ``null`` is never ambiguous. CSV
files write ``inf`` (which ``float()`` reads back) and an empty cell for NaN.

Everything here is driven by the metric declarations of :mod:`rarity_score.metrics` (their
:class:`~rarity_score.metrics.base.Column` and :class:`~rarity_score.metrics.base.SetValue`
values): no column, summary entry or heading is listed in this module.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score import defaults, metrics
from rarity_score import metrics as _registry  # for methods whose parameter is called metrics
from rarity_score._version import __version__
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.names import csv_cell, csv_text, csv_value, printable
from rarity_score.io.run_record import COMPARABILITY
from rarity_score.metrics.base import (
    DTYPES,
    Column,
    Computed,
    Metric,
    Section,
    find,
    format_value,
    quantile_name,
    scalar,
)

__all__ = ["Evaluation", "format_summary", "quantile_name"]


def _notes() -> dict[str, str]:
    """Conventions written into every JSON result, so that a file explains itself."""
    infinite = [f"{c.name}_infinite" for c in metrics.columns_of() if c.may_be_infinite]
    flags = " and ".join(infinite) + (" flags" if len(infinite) == 1 else " flag")
    encoding = "JSON has no NaN or infinity: missing values are null"
    return {
        "rarity": (
            "statistics over in-manifold samples only; a generated sample outside every real "
            "k-NN sphere has no rarity score (null) and is counted in n_out_of_manifold"
        ),
        "comparability": COMPARABILITY,
        "encoding": f"{encoding}; {flags} +inf" if infinite else encoding,
    }


#: Version of the layout of :meth:`Evaluation.to_dict` / :meth:`Evaluation.write_json`.
JSON_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Evaluation:
    """Everything one sweep computed for a generated set against a real set.

    ``columns`` holds the per-sample arrays by column name (one entry per generated sample, in
    input order; indices refer to rows of the real array as given), in table order; ``values``
    what the sweep kept per set that the arrays cannot give (recall, coverage), by metric name.
    Everything else is derived when asked: :attr:`n_fake`, precision (the fraction in the
    manifold), density (from ``sphere_count``), the statistics of :meth:`summary`.

    The attributes of the metrics (``rarity``, ``in_manifold``, ``sphere_index``, ``precision``,
    ``recall``, ..., and those of any registered metric, e.g. ``authentic``) read from there;
    those of metrics not asked for are ``None``. Out-of-manifold samples have ``rarity`` NaN,
    ``in_manifold`` False and ``sphere_index`` -1 (rarity is computed in every sweep; ``metrics``
    lists what was asked, which is what the outputs hold).

    Example (an evaluation built by hand; :func:`rarity_score.evaluate` makes real ones):

    >>> ev = Evaluation.from_fields(
    ...     k=3, n_real=5, dim=2, metrics=("rarity", "precision"),
    ...     rarity=np.array([0.5, np.nan, 1.5]),
    ...     in_manifold=np.array([True, False, True]),
    ...     sphere_index=np.array([4, -1, 0]),
    ... )
    >>> s = ev.summary()
    >>> s["n_out_of_manifold"], s["rarity"]["mean"], s["recall"], round(ev.precision, 4)
    (1, 1.0, None, 0.6667)
    >>> print(ev.to_csv(), end="")
    index,in_manifold,rarity,sphere_index
    0,true,0.5,4
    1,false,,
    2,true,1.5,0
    """

    k: int
    n_real: int
    dim: int
    metrics: tuple[str, ...]
    columns: Mapping[str, np.ndarray]
    values: Mapping[str, Any] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "in_manifold" not in self.columns:
            raise ValueError("an Evaluation needs the in_manifold column")
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"per-sample columns of different lengths: {lengths}")

    @classmethod
    def from_fields(
        cls,
        *,
        k: int,
        n_real: int,
        dim: int,
        metrics: Sequence[str],
        n_fake: int | None = None,
        extra: dict[str, object] | None = None,
        **fields: Any,
    ) -> Evaluation:
        """An evaluation from named fields: per-sample arrays by column name (``rarity=...``)
        and kept per-set values by metric name (``recall=0.5``); None entries are left out.

        Derived values may be given too (``n_fake``, ``precision``, ``density``), and are checked
        against what the arrays give: a ValueError when they disagree.
        """
        registry = _registry  # the parameter ``metrics`` shadows the module here
        column_names = {column.name for column in registry.columns_of()}
        columns: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        derived: dict[str, Any] = {}
        for name, value in fields.items():
            if value is None:
                continue
            if name in column_names:
                columns[name] = np.asarray(value)
            elif name in registry.names():
                if registry.get(name).summarize is None:
                    values[name] = value
                else:
                    derived[name] = value
            else:
                raise TypeError(f"Evaluation.from_fields() got an unexpected field {name!r}")
        order = [c.name for c in registry.columns_of() if c.name in columns]
        evaluation = cls(
            k=k,
            n_real=n_real,
            dim=dim,
            metrics=tuple(metrics),
            columns={name: columns[name] for name in order},
            values=values,
            extra=dict(extra or {}),
        )
        if n_fake is not None and n_fake != evaluation.n_fake:
            raise ValueError(f"n_fake={n_fake} but the arrays have {evaluation.n_fake} samples")
        for name, given in derived.items():
            got = evaluation.entry(name)
            if not _same(got, given):
                raise ValueError(f"{name}={given!r} disagrees with the arrays, which give {got!r}")
        return evaluation

    # ------------------------------------------------------------------ attributes

    @property
    def n_fake(self) -> int:
        """Number of generated samples (the length of every per-sample array)."""
        return len(self.columns["in_manifold"])

    @property
    def in_manifold(self) -> np.ndarray:
        return self.columns["in_manifold"]

    @property
    def rarity(self) -> np.ndarray:
        return self.columns["rarity"]

    @property
    def sphere_index(self) -> np.ndarray:
        return self.columns["sphere_index"]

    @property
    def sphere_count(self) -> np.ndarray | None:
        return self.columns.get("sphere_count")

    @property
    def nearest_real_index(self) -> np.ndarray | None:
        return self.columns.get("nearest_real_index")

    @property
    def nearest_real_distance(self) -> np.ndarray | None:
        return self.columns.get("nearest_real_distance")

    @property
    def realism(self) -> np.ndarray | None:
        return self.columns.get("realism")

    @property
    def precision(self) -> float | None:
        return self.entry("precision")  # type: ignore[no-any-return]

    @property
    def recall(self) -> float | None:
        return self.entry("recall")  # type: ignore[no-any-return]

    @property
    def density(self) -> float | None:
        return self.entry("density")  # type: ignore[no-any-return]

    @property
    def coverage(self) -> float | None:
        return self.entry("coverage")  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        """The columns and summary entries of registered metrics without a property above
        (``evaluation.authentic``): None when not computed."""
        # Reached only when ordinary lookup fails; dunder and private names (copy, pickle) and
        # a half-built instance must fail as usual instead of recursing.
        columns = self.__dict__.get("columns")
        if name.startswith("_") or columns is None:
            raise AttributeError(name)
        if name in {column.name for column in metrics.columns_of()}:
            return columns.get(name)
        if name in metrics.names():
            return self.entry(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def entry(self, name: str, quantiles: Sequence[float] = defaults.QUANTILES) -> Any:
        """Metric ``name``'s entry of :meth:`summary`, as computed (NaN kept, numpy numbers
        possible), or None when it was not asked for."""
        return self._entry(metrics.get(name), quantiles)

    def _entry(self, metric: Metric, quantiles: Sequence[float]) -> Any:
        if metric.name not in self.metrics:
            return None
        kept = self.values.get(metric.name)
        if metric.summarize is None:
            return kept
        return metric.summarize(Computed(int(self.k), self.columns, kept, tuple(quantiles)))

    # ------------------------------------------------------------------ summaries

    def summary(self, quantiles: Sequence[float] = defaults.QUANTILES) -> dict[str, Any]:
        """Counts, and one entry per metric that has per-set values (in registry order).

        Keys: ``k``, ``n_real``, ``n_fake``, ``dim``, ``metrics``, ``n_in_manifold``,
        ``n_out_of_manifold``, ``fraction_out_of_manifold``, then each metric's entry
        (``None`` when not computed): ``rarity`` (a dict with ``n``, ``mean``, ``std``
        (population, ddof=0), ``min``, ``max``, ``median`` and one ``qNN`` entry per quantile,
        all over in-manifold samples only), ``precision``, ``recall``, ``density``,
        ``coverage``, ``realism`` (a dict with ``mean`` and ``median`` over finite values and
        ``n_infinite``). Statistics with no sample to average are ``None``, never NaN. Values are
        plain Python ``int`` / ``float`` / ``None``.

        >>> ev = Evaluation.from_fields(k=3, n_real=4, dim=2, metrics=("rarity",),
        ...                             rarity=np.array([np.nan, np.nan]),
        ...                             in_manifold=np.array([False, False]),
        ...                             sphere_index=np.array([-1, -1]))
        >>> s = ev.summary()
        >>> s["fraction_out_of_manifold"], s["rarity"]["n"], s["rarity"]["median"]
        (1.0, 0, None)
        """
        in_manifold = np.asarray(self.in_manifold, dtype=bool)
        n_in = int(in_manifold.sum())
        n_fake = int(in_manifold.size)
        out: dict[str, Any] = {
            **self._sizes(),
            "n_in_manifold": n_in,
            "n_out_of_manifold": n_fake - n_in,
            "fraction_out_of_manifold": (n_fake - n_in) / n_fake if n_fake else None,
        }
        for metric in metrics.REGISTRY:
            if metric.values:
                out[metric.name] = _plain(self._entry(metric, quantiles))
        return out

    def _sizes(self) -> dict[str, Any]:
        """k, the set sizes and the metrics: what every summary and record starts with."""
        return {
            "k": int(self.k),
            "n_real": int(self.n_real),
            "n_fake": self.n_fake,
            "dim": int(self.dim),
            "metrics": list(self.metrics),
        }

    def settings(self) -> dict[str, Any]:
        """What the scores depend on: k, the set sizes, the metrics, the package version, and the
        engine's own notes (``extra``). Scores are comparable only within one feature extractor,
        one real reference set and one k; callers add the first two (see :meth:`write_json`).
        """
        out: dict[str, Any] = {
            **self._sizes(),
            "package": "rarity-score",
            "package_version": __version__,
        }
        for key, value in self.extra.items():
            out.setdefault(str(key), _jsonable(value))
        return out

    # ------------------------------------------------------------------ per sample

    def _declared(self) -> dict[str, Column]:
        """The declarations of the columns of the metrics asked for, by name."""
        return {column.name: column for column in metrics.columns_of(self.metrics)}

    def per_sample_columns(self) -> dict[str, np.ndarray]:
        """The per-sample arrays of the metrics asked for, by column name, in column order.

        ``in_manifold`` always; the other columns of a metric when it was asked for (``rarity``
        and ``sphere_index`` for rarity) and its arrays are present.
        """
        out: dict[str, np.ndarray] = {}
        for column in metrics.columns_of(self.metrics):
            values = self.columns.get(column.name)
            if values is not None:
                out[column.name] = np.asarray(values, dtype=DTYPES[column.kind])
        return out

    def per_sample_rows(self, names: Sequence[str] | None = None) -> Iterator[dict[str, str]]:
        """One dict of CSV cells per generated sample, in input order.

        Cells: ``index`` (and ``name`` when ``names`` is given, one per generated sample, made
        safe by :func:`rarity_score.io.names.csv_cell`: escaped where it is not printable
        UTF-8, with a leading apostrophe where a spreadsheet would run it as a formula),
        ``in_manifold`` (``true``/``false``), then the computed columns of
        :meth:`per_sample_columns`. Floats use the shortest text that reads back to the same
        float64 (``repr``); ``rarity`` and ``sphere_index`` are empty for out-of-manifold
        samples (never 0); NaN is an empty cell and +inf is ``inf``.

        >>> ev = Evaluation.from_fields(k=1, n_real=2, dim=1, metrics=("rarity",),
        ...                             rarity=np.array([0.1, np.nan]),
        ...                             in_manifold=np.array([True, False]),
        ...                             sphere_index=np.array([1, -1]))
        >>> list(ev.per_sample_rows(names=["a.png", "b.png"]))[1]
        {'index': '1', 'name': 'b.png', 'in_manifold': 'false', 'rarity': '', 'sphere_index': ''}
        """
        n = self.n_fake
        if names is not None:
            names = list(names)
            if len(names) != n:
                raise ValueError(f"got {len(names)} names for {n} generated samples")
        columns = self.per_sample_columns()
        in_manifold = np.asarray(self.in_manifold, dtype=bool)
        blank_outside = {name for name, c in self._declared().items() if c.only_in_manifold}
        for i in range(n):
            row = {"index": str(i)}
            if names is not None:
                row["name"] = csv_cell(str(names[i]))
            for name, values in columns.items():
                if name in blank_outside and not in_manifold[i]:
                    row[name] = ""
                else:
                    row[name] = csv_value(values[i])
            yield row

    def to_csv(self, names: Sequence[str] | None = None) -> str:
        """The per-sample table as CSV text (header plus one line per generated sample)."""
        rows = self.per_sample_rows(names)
        header = ["index"] + (["name"] if names is not None else [])
        header += list(self.per_sample_columns())
        return csv_text(header, rows)

    def write_csv(self, path: str | os.PathLike[str], names: Sequence[str] | None = None) -> Path:
        """Write the per-sample table (see :meth:`per_sample_rows`) to ``path`` atomically.

        >>> import tempfile, pathlib
        >>> ev = Evaluation.from_fields(k=1, n_real=2, dim=1, metrics=("rarity",),
        ...                             rarity=np.array([0.25]), in_manifold=np.array([True]),
        ...                             sphere_index=np.array([0]))
        >>> p = ev.write_csv(pathlib.Path(tempfile.mkdtemp()) / "scores.csv")
        >>> p.read_text().splitlines()
        ['index,in_manifold,rarity,sphere_index', '0,true,0.25,0']
        """
        return atomic_write_text(path, self.to_csv(names))

    # ------------------------------------------------------------------ JSON

    def to_dict(
        self,
        *,
        per_sample: bool = True,
        names: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A JSON-safe dict with keys ``format``, ``format_version``, ``settings``, ``summary``,
        ``notes`` (the conventions, in words) and ``per_sample``.

        ``settings`` is :meth:`settings` updated with ``extra`` (for instance the feature
        extractor and the feature files); ``summary`` is :meth:`summary`; ``per_sample`` (left
        out when ``per_sample`` is False) maps each column of :meth:`per_sample_columns` (plus
        ``name`` when ``names`` is given) to a list with one entry per generated sample.

        Encoding: NaN is ``null`` (out-of-manifold ``rarity``; ``sphere_index`` is ``null`` there
        too, not -1). JSON has no infinity, so an infinite realism score is also ``null``, and the
        list ``per_sample["realism_infinite"]`` flags which entries are +inf (likewise for every
        column that may be infinite); the summary counts them in ``realism.n_infinite``. The
        result passes ``json.dumps(..., allow_nan=False)``.

        >>> ev = Evaluation.from_fields(k=1, n_real=2, dim=1, metrics=("rarity", "realism"),
        ...                             rarity=np.array([0.5, np.nan]),
        ...                             in_manifold=np.array([True, False]),
        ...                             sphere_index=np.array([1, -1]),
        ...                             realism=np.array([np.inf, 0.2]))
        >>> d = ev.to_dict()
        >>> table = d["per_sample"]
        >>> table["rarity"], table["realism"], table["realism_infinite"]
        ([0.5, None], [None, 0.2], [True, False])
        """
        settings = self.settings()
        if extra:
            settings.update({str(key): _jsonable(value) for key, value in extra.items()})
        out: dict[str, Any] = {
            "format": "rarity-score/evaluation",
            "format_version": JSON_FORMAT_VERSION,
            "settings": settings,
            "summary": self.summary(),
            "notes": _notes(),
        }
        if per_sample:
            columns = self.per_sample_columns()
            in_manifold = np.asarray(self.in_manifold, dtype=bool)
            declared = self._declared()
            table: dict[str, list[Any]] = {}
            if names is not None:
                if len(names) != in_manifold.size:
                    raise ValueError(
                        f"got {len(names)} names for {in_manifold.size} generated samples"
                    )
                table["name"] = [printable(str(name)) for name in names]
            for name, values in columns.items():
                cells = [_jsonable(value) for value in values.tolist()]
                if declared[name].only_in_manifold:
                    cells = [
                        c if inside else None for c, inside in zip(cells, in_manifold, strict=True)
                    ]
                table[name] = cells
                if declared[name].may_be_infinite:
                    table[f"{name}_infinite"] = np.isposinf(values.astype(np.float64)).tolist()
            out["per_sample"] = table
        return out

    def to_json(self, *, indent: int | None = 2, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON text (no NaN / Infinity tokens)."""
        return json.dumps(self.to_dict(**kwargs), indent=indent, allow_nan=False) + "\n"

    def write_json(
        self,
        path: str | os.PathLike[str],
        extra: Mapping[str, Any] | None = None,
        *,
        per_sample: bool = False,
        names: Sequence[str] | None = None,
    ) -> Path:
        """Write settings and summary (and the per-sample lists if asked) as JSON, atomically.

        ``extra`` goes into ``settings``: record there what the scores depend on besides k, e.g.
        ``{"feature_extractor": "vgg16-fc2-relu", "real_features": "real.npy"}``. Encoding of
        missing and infinite values: see :meth:`to_dict`.

        >>> import json, tempfile, pathlib
        >>> ev = Evaluation.from_fields(k=1, n_real=2, dim=1, metrics=("rarity",),
        ...                             rarity=np.array([np.nan]), in_manifold=np.array([False]),
        ...                             sphere_index=np.array([-1]))
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> p = ev.write_json(folder / "s.json", {"real_features": "r.npy"})
        >>> d = json.loads(p.read_text())
        >>> d["settings"]["real_features"], d["summary"]["rarity"]["mean"]
        ('r.npy', None)
        """
        text = self.to_json(per_sample=per_sample, names=names, extra=extra)
        return atomic_write_text(path, text)


def format_summary(
    summary: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
    intervals: Mapping[str, Any] | None = None,
) -> str:
    """A readable, aligned text table of :meth:`Evaluation.summary` (what ``rarity score`` prints).

    ``inputs`` adds labelled lines under "Settings" (e.g. the feature files). ``intervals``
    (shaped as the summary, ``[low, high]`` leaves: :func:`rarity_score.uncertainty.
    summary_intervals`) adds each value's interval in brackets: the lines of a metric's own
    section whose label is a key of its entry, and the common values by their path. A metric with a
    section of its own (rarity) prints it; the in-text values of the others are the lines of
    "Fidelity and diversity" (shown when computed or asked for; ``n/a`` when missing).

    >>> ev = Evaluation.from_fields(k=3, n_real=5, dim=2, metrics=("rarity",),
    ...                             rarity=np.array([0.5, np.nan]),
    ...                             in_manifold=np.array([True, False]),
    ...                             sphere_index=np.array([4, -1]))
    >>> print(format_summary(ev.summary()), end="")  # doctest: +NORMALIZE_WHITESPACE
    Settings
      k                  3
      real samples       5
      generated samples  2
      feature dimension  2
    <BLANKLINE>
    Real manifold (union of the real k-NN spheres)
      in manifold        1 / 2
      out of manifold    1 / 2  (50.0 %, no rarity score)
    <BLANKLINE>
    Rarity score (over the 1 in-manifold samples)
      mean               0.5
      std                0
      min                0.5
      q10                0.5
      q25                0.5
      median             0.5
      q75                0.5
      q90                0.5
      max                0.5
    """
    sections: list[Section] = []

    settings = [("k", str(summary["k"]))]
    settings += [
        (printable(str(label)), printable(str(value))) for label, value in (inputs or {}).items()
    ]
    settings += [
        ("real samples", str(summary["n_real"])),
        ("generated samples", str(summary["n_fake"])),
        ("feature dimension", str(summary["dim"])),
    ]
    sections.append(("Settings", settings))

    n_fake = summary["n_fake"]
    fraction = summary["fraction_out_of_manifold"]
    out_text = f"{summary['n_out_of_manifold']} / {n_fake}"
    if fraction is not None:
        share = f"{100 * fraction:.1f} %"
        interval = _interval(intervals, ("fraction_out_of_manifold",))
        if interval is not None:
            share += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
        out_text += f"  ({share}, no rarity score)"
    sections.append(
        (
            "Real manifold (union of the real k-NN spheres)",
            [
                ("in manifold", f"{summary['n_in_manifold']} / {n_fake}"),
                ("out of manifold", out_text),
            ],
        )
    )

    asked = set(summary.get("metrics") or ())
    common: list[tuple[str, str]] = []
    for metric in metrics.REGISTRY:
        entry = summary.get(metric.name)
        if metric.section is not None:
            if entry is not None:
                title, rows = metric.section(entry)
                rows = [
                    (label, _bracketed(text, _interval(intervals, (metric.name, label))))
                    for label, text in rows
                ]
                sections.append((title, rows))
            continue
        for value in metric.values:
            if not value.in_text:
                continue
            number = value.find(summary)
            if number is None and metric.name not in asked:
                continue
            if not number and not value.text_when_zero:
                continue
            text = format_value(number, value.kind)
            common.append((value.heading, _bracketed(text, _interval(intervals, value.path))))
    if common:
        sections.append(("Fidelity and diversity", common))

    width = max(len(label) for _, rows in sections for label, _ in rows)
    lines: list[str] = []
    for title, rows in sections:
        lines.append(title)
        lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
        lines.append("")
    return "\n".join(lines[:-1]) + "\n"


def _interval(intervals: Mapping[str, Any] | None, path: Sequence[str]) -> list[float] | None:
    """The ``[low, high]`` at ``path`` of ``intervals``, or None."""
    found = find(intervals, path)
    if isinstance(found, (list, tuple)) and len(found) == 2:
        return [float(found[0]), float(found[1])]
    return None


def _bracketed(text: str, interval: list[float] | None) -> str:
    """A printed value followed by its interval, when it has one."""
    if interval is None:
        return text
    return f"{text}  [{format_value(interval[0])}, {format_value(interval[1])}]"


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN."""
    if a is None or b is None:
        return a is b
    try:
        return bool(a == b) or (math.isnan(float(a)) and math.isnan(float(b)))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """A summary entry as plain Python values: dicts of ints, floats and None (never NaN)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return scalar(value)
    return value


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars / arrays and non-finite floats into strict-JSON values."""
    if isinstance(value, np.ndarray):
        return [_jsonable(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return printable(value)  # e.g. a path that is not UTF-8: written escaped
    if isinstance(value, (int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {printable(str(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, os.PathLike):
        return printable(str(os.fspath(value)))
    return printable(str(value))
