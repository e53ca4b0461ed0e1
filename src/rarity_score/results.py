"""Per-sample results of one evaluation, their summaries, and writing them to CSV / JSON.

Missing values
--------------
A generated sample outside every real k-NN sphere is *out of the manifold* and has no rarity
score. In arrays it is NaN (with ``in_manifold`` False and ``sphere_index`` -1); in CSV files its
``rarity`` and ``sphere_index`` cells are empty; in JSON it is ``null``. It is never written as 0
and never dropped: every output has one entry per generated sample.

JSON has no NaN or infinity. :meth:`Evaluation.to_dict` therefore writes every non-finite float as
``null`` and, where a value can be legitimately infinite (the realism score of a generated sample
that coincides with a real sample of a pruned sphere, ``d(r, g) = 0``), adds an explicit boolean
flag list ``realism_infinite`` so that ``null`` is never ambiguous. CSV files write ``inf`` (which
``float()`` reads back) and an empty cell for NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score import defaults
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.names import csv_cell, printable

__all__ = ["Evaluation", "format_summary", "quantile_name"]

#: Conventions written into every JSON result, so that a file explains itself.
_NOTES: dict[str, str] = {
    "rarity": (
        "statistics over in-manifold samples only; a generated sample outside every real k-NN "
        "sphere has no rarity score (null) and is counted in n_out_of_manifold"
    ),
    "comparability": (
        "scores are comparable only within one feature extractor, one real reference set "
        "(real_fingerprint) and one k"
    ),
    "encoding": "JSON has no NaN or infinity: missing values are null; realism_infinite flags +inf",
}

#: Version of the layout of :meth:`Evaluation.to_dict` / :meth:`Evaluation.write_json`.
JSON_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Evaluation:
    """Everything one sweep computed for a generated set against a real set.

    Per-sample arrays have one entry per generated sample, in input order. Indices refer to rows of
    the real array as given. Fields of metrics that were not asked for are ``None``.
    Out-of-manifold samples have ``rarity`` NaN, ``in_manifold`` False and ``sphere_index`` -1.

    Example (an evaluation built by hand; :func:`rarity_score.evaluate` makes real ones):

    >>> ev = Evaluation(
    ...     k=3, n_real=5, n_fake=3, dim=2, metrics=("rarity", "precision"),
    ...     rarity=np.array([0.5, np.nan, 1.5]),
    ...     in_manifold=np.array([True, False, True]),
    ...     sphere_index=np.array([4, -1, 0]),
    ...     precision=2 / 3,
    ... )
    >>> s = ev.summary()
    >>> s["n_out_of_manifold"], s["rarity"]["mean"], s["recall"]
    (1, 1.0, None)
    >>> print(ev.to_csv(), end="")
    index,in_manifold,rarity,sphere_index
    0,true,0.5,4
    1,false,,
    2,true,1.5,0
    """

    k: int
    n_real: int
    n_fake: int
    dim: int
    metrics: tuple[str, ...]
    rarity: np.ndarray
    in_manifold: np.ndarray
    sphere_index: np.ndarray
    sphere_count: np.ndarray | None = None
    nearest_real_index: np.ndarray | None = None
    nearest_real_distance: np.ndarray | None = None
    realism: np.ndarray | None = None
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    # ------------------------------------------------------------------ summaries

    def summary(self, quantiles: Sequence[float] = defaults.QUANTILES) -> dict[str, Any]:
        """Counts, rarity statistics over in-manifold samples, and the set-level metrics.

        Keys: ``k``, ``n_real``, ``n_fake``, ``dim``, ``metrics``, ``n_in_manifold``,
        ``n_out_of_manifold``, ``fraction_out_of_manifold``, ``rarity`` (a dict with ``n``,
        ``mean``, ``std`` (population, ddof=0), ``min``, ``max``, ``median`` and one ``qNN``
        entry per quantile, all over in-manifold samples only; ``None`` when rarity was not
        computed), ``precision``, ``recall``, ``density``, ``coverage`` (``None`` when not
        computed) and ``realism`` (``None`` or a dict with ``mean`` and ``median`` over finite
        values and ``n_infinite``). Statistics with no sample to average are ``None``, never NaN.
        Values are plain Python ``int`` / ``float`` / ``None``.

        >>> ev = Evaluation(k=3, n_real=4, n_fake=2, dim=2, metrics=("rarity",),
        ...                 rarity=np.array([np.nan, np.nan]),
        ...                 in_manifold=np.array([False, False]),
        ...                 sphere_index=np.array([-1, -1]))
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
        if self._has("rarity"):
            scores = np.asarray(self.rarity, dtype=np.float64)[in_manifold]
            out["rarity"] = _statistics(scores, quantiles)
        else:
            out["rarity"] = None
        for name in ("precision", "recall", "density", "coverage"):
            out[name] = _scalar(getattr(self, name))
        if self.realism is not None:
            realism = np.asarray(self.realism, dtype=np.float64)
            finite = realism[np.isfinite(realism)]
            out["realism"] = {
                "n_finite": int(finite.size),
                "n_infinite": int(np.isposinf(realism).sum()),
                "mean": _scalar(finite.mean()) if finite.size else None,
                "median": _scalar(np.median(finite)) if finite.size else None,
            }
        else:
            out["realism"] = None
        return out

    def _sizes(self) -> dict[str, Any]:
        """k, the set sizes and the metrics: what every summary and record starts with."""
        return {
            "k": int(self.k),
            "n_real": int(self.n_real),
            "n_fake": int(self.n_fake),
            "dim": int(self.dim),
            "metrics": list(self.metrics),
        }

    def settings(self) -> dict[str, Any]:
        """What the scores depend on: k, the set sizes, the metrics, the package version, and the
        engine's own notes (``extra``). Scores are comparable only within one feature extractor,
        one real reference set and one k; callers add the first two (see :meth:`write_json`).
        """
        from rarity_score import __version__

        out: dict[str, Any] = {
            **self._sizes(),
            "package": "rarity-score",
            "package_version": __version__,
        }
        for key, value in self.extra.items():
            out.setdefault(str(key), _jsonable(value))
        return out

    # ------------------------------------------------------------------ per sample

    def per_sample_columns(self) -> dict[str, np.ndarray]:
        """The computed per-sample arrays, by CSV column name, in column order.

        ``rarity`` and ``sphere_index`` appear when rarity was computed; the other columns when
        their arrays are present.
        """
        columns: dict[str, np.ndarray] = {"in_manifold": np.asarray(self.in_manifold, dtype=bool)}
        if self._has("rarity"):
            columns["rarity"] = np.asarray(self.rarity, dtype=np.float64)
            columns["sphere_index"] = np.asarray(self.sphere_index)
        optional = {
            "sphere_count": self.sphere_count,
            "nearest_real_index": self.nearest_real_index,
            "nearest_real_distance": self.nearest_real_distance,
            "realism": self.realism,
        }
        for name, values in optional.items():
            if values is not None:
                columns[name] = np.asarray(values)
        return columns

    def per_sample_rows(self, names: Sequence[str] | None = None) -> Iterator[dict[str, str]]:
        """One dict of CSV cells per generated sample, in input order.

        Cells: ``index`` (and ``name`` when ``names`` is given, one per generated sample, made
        safe by :func:`rarity_score.io.names.csv_cell`: escaped where it is not printable
        UTF-8, with a leading apostrophe where a spreadsheet would run it as a formula),
        ``in_manifold`` (``true``/``false``), then the computed columns of
        :meth:`per_sample_columns`. Floats use the shortest text that reads back to the same
        float64 (``repr``); ``rarity`` and ``sphere_index`` are empty for out-of-manifold
        samples (never 0); NaN is an empty cell and +inf is ``inf``.

        >>> ev = Evaluation(k=1, n_real=2, n_fake=2, dim=1, metrics=("rarity",),
        ...                 rarity=np.array([0.1, np.nan]), in_manifold=np.array([True, False]),
        ...                 sphere_index=np.array([1, -1]))
        >>> list(ev.per_sample_rows(names=["a.png", "b.png"]))[1]
        {'index': '1', 'name': 'b.png', 'in_manifold': 'false', 'rarity': '', 'sphere_index': ''}
        """
        n = int(np.asarray(self.in_manifold).size)
        if names is not None:
            names = list(names)
            if len(names) != n:
                raise ValueError(f"got {len(names)} names for {n} generated samples")
        columns = self.per_sample_columns()
        in_manifold = columns["in_manifold"]
        for i in range(n):
            row = {"index": str(i)}
            if names is not None:
                row["name"] = csv_cell(str(names[i]))
            for name, values in columns.items():
                if name in ("rarity", "sphere_index") and not in_manifold[i]:
                    row[name] = ""
                else:
                    row[name] = _cell(values[i])
            yield row

    def to_csv(self, names: Sequence[str] | None = None) -> str:
        """The per-sample table as CSV text (header plus one line per generated sample)."""
        rows = self.per_sample_rows(names)
        header = ["index"] + (["name"] if names is not None else [])
        header += list(self.per_sample_columns())
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def write_csv(self, path: str | os.PathLike[str], names: Sequence[str] | None = None) -> Path:
        """Write the per-sample table (see :meth:`per_sample_rows`) to ``path`` atomically.

        >>> import tempfile, pathlib
        >>> ev = Evaluation(k=1, n_real=2, n_fake=1, dim=1, metrics=("rarity",),
        ...                 rarity=np.array([0.25]), in_manifold=np.array([True]),
        ...                 sphere_index=np.array([0]))
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
        list ``per_sample["realism_infinite"]`` flags which entries are +inf; the summary counts
        them in ``realism.n_infinite``. The result passes ``json.dumps(..., allow_nan=False)``.

        >>> ev = Evaluation(k=1, n_real=2, n_fake=2, dim=1, metrics=("rarity", "realism"),
        ...                 rarity=np.array([0.5, np.nan]), in_manifold=np.array([True, False]),
        ...                 sphere_index=np.array([1, -1]), realism=np.array([np.inf, 0.2]))
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
            "notes": dict(_NOTES),
        }
        if per_sample:
            columns = self.per_sample_columns()
            in_manifold = columns["in_manifold"]
            table: dict[str, list[Any]] = {}
            if names is not None:
                if len(names) != in_manifold.size:
                    raise ValueError(
                        f"got {len(names)} names for {in_manifold.size} generated samples"
                    )
                table["name"] = [printable(str(name)) for name in names]
            for name, values in columns.items():
                cells = [_jsonable(value) for value in values.tolist()]
                if name in ("rarity", "sphere_index"):
                    cells = [
                        c if inside else None for c, inside in zip(cells, in_manifold, strict=True)
                    ]
                table[name] = cells
                if name == "realism":
                    table["realism_infinite"] = np.isposinf(values.astype(np.float64)).tolist()
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
        >>> ev = Evaluation(k=1, n_real=2, n_fake=1, dim=1, metrics=("rarity",),
        ...                 rarity=np.array([np.nan]), in_manifold=np.array([False]),
        ...                 sphere_index=np.array([-1]))
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> p = ev.write_json(folder / "s.json", {"real_features": "r.npy"})
        >>> d = json.loads(p.read_text())
        >>> d["settings"]["real_features"], d["summary"]["rarity"]["mean"]
        ('r.npy', None)
        """
        text = self.to_json(per_sample=per_sample, names=names, extra=extra)
        return atomic_write_text(path, text)

    # ------------------------------------------------------------------ helpers

    def _has(self, metric: str) -> bool:
        return metric in self.metrics


def quantile_name(q: float) -> str:
    """The summary key of a quantile: ``0.1 -> "q10"``, ``0.025 -> "q2.5"``.

    >>> [quantile_name(q) for q in (0.1, 0.25, 0.5, 0.025)]
    ['q10', 'q25', 'q50', 'q2.5']
    """
    return "q" + f"{round(q * 100, 6):g}"


def format_summary(summary: Mapping[str, Any], inputs: Mapping[str, Any] | None = None) -> str:
    """A readable, aligned text table of :meth:`Evaluation.summary` (what ``rarity score`` prints).

    ``inputs`` adds labelled lines under "Settings" (e.g. the feature files).

    >>> ev = Evaluation(k=3, n_real=5, n_fake=2, dim=2, metrics=("rarity",),
    ...                 rarity=np.array([0.5, np.nan]), in_manifold=np.array([True, False]),
    ...                 sphere_index=np.array([4, -1]))
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
    sections: list[tuple[str, list[tuple[str, str]]]] = []

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
        out_text += f"  ({100 * fraction:.1f} %, no rarity score)"
    sections.append(
        (
            "Real manifold (union of the real k-NN spheres)",
            [
                ("in manifold", f"{summary['n_in_manifold']} / {n_fake}"),
                ("out of manifold", out_text),
            ],
        )
    )

    rarity = summary.get("rarity")
    if rarity is not None:
        title = f"Rarity score (over the {rarity['n']} in-manifold samples)"
        if rarity["n"] == 0:
            sections.append((title, [("(none)", "no generated sample lies in the real manifold")]))
        else:
            quantiles = [key for key in rarity if key.startswith("q") and key != "q50"]
            low = [key for key in quantiles if float(key[1:]) < 50]
            high = [key for key in quantiles if float(key[1:]) > 50]
            keys = ["mean", "std", "min", *low, "median", *high, "max"]
            sections.append((title, [(key, _number(rarity[key])) for key in keys]))

    asked = set(summary.get("metrics") or ())
    fidelity = [
        (name, _number(summary[name]))
        for name in ("precision", "recall", "density", "coverage")
        if summary.get(name) is not None or name in asked
    ]
    realism = summary.get("realism")
    if realism is not None:
        fidelity.append(("realism mean", _number(realism["mean"])))
        fidelity.append(("realism median", _number(realism["median"])))
        if realism["n_infinite"]:
            fidelity.append(("realism infinite", str(realism["n_infinite"])))
    if fidelity:
        sections.append(("Fidelity and diversity", fidelity))

    width = max(len(label) for _, rows in sections for label, _ in rows)
    lines: list[str] = []
    for title, rows in sections:
        lines.append(title)
        lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
        lines.append("")
    return "\n".join(lines[:-1]) + "\n"


def _statistics(scores: np.ndarray, quantiles: Sequence[float]) -> dict[str, Any]:
    stats: dict[str, Any] = {"n": int(scores.size)}
    empty = scores.size == 0
    stats["mean"] = None if empty else _scalar(scores.mean())
    stats["std"] = None if empty else _scalar(scores.std())
    stats["min"] = None if empty else _scalar(scores.min())
    stats["max"] = None if empty else _scalar(scores.max())
    stats["median"] = None if empty else _scalar(np.median(scores))
    for q in quantiles:
        stats[quantile_name(q)] = None if empty else _scalar(np.quantile(scores, q))
    return stats


def _scalar(value: object) -> float | None:
    """A plain float, or ``None`` for missing / NaN values."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


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


def _cell(value: Any) -> str:
    """One CSV cell: booleans as true/false, floats by repr (round-trips), NaN empty."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return ""
        return repr(number)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"
