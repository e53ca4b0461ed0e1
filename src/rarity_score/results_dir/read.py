"""Reading a results directory: the one reader, which the report and ``rarity report`` use and
users call from a notebook (``rarity_score.load_results(DIR)``).

Only what is saved is read; nothing is recomputed. A results directory is untrusted input (it
may come from someone else): ``run.json`` is validated
(:func:`rarity_score.io.run_record.validate_run`), every file read must lie inside the directory
(no ``..``, no absolute path, no symbolic link leading out), and every array is checked for its
kind, shape and length before use; anything else is one line naming the file (a
:class:`ResultsError`). Files written by other versions may lack an array or a summary file: what
is missing is shown as missing, never invented.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score.io.features import open_npz, read_npz_array
from rarity_score.io.names import one_line, printable, shorten, slugs, uncsv_cell
from rarity_score.io.run_record import (
    Fields,
    inside,
    json_type,
    read_json,
    read_run_record,
    validate_summary,
)
from rarity_score.results_dir.layout import column_declarations, registry, row_values

if TYPE_CHECKING:
    from rarity_score.metrics.base import Column, Gallery, SetValue

__all__ = ["Results", "ResultsError", "SetResult", "load_results", "read_run", "read_summary"]

#: The kind of values each kind of column must hold in a file, and their dtype once read.
_KINDS = {"float": "fiu", "int": "iu", "index": "iu", "bool": "b", "text": "U"}
_DTYPES: dict[str, Any] = {"float": np.float64, "int": np.int64, "index": np.int64, "bool": bool}
_KIND_WORDS = {
    "float": "numbers",
    "int": "integers",
    "index": "integers",
    "bool": "true/false values",
    "text": "text (a unicode array)",
}


class ResultsError(ValueError):
    """A results directory cannot be read (a missing ``run.json``, a damaged file, a bad layout)
    or written; the message is one line naming the file."""


@dataclass
class SetResult:
    """One set of a results directory: its entry in ``run.json`` and its per-sample arrays.

    ``columns`` holds the arrays of the declared columns the set's file holds, by column name
    (``rarity`` and ``in_manifold`` always; ``in_manifold`` derived from ``rarity`` being finite
    when the file lacks it); each is also an attribute (``item.nearest_real_index``), None when
    the file does not hold it. Indices of out-of-manifold samples are -1 in ``sphere_index``.
    """

    name: str
    slug: str
    source: str | None
    kind: str | None
    n: int
    n_skipped: int
    has_images: bool
    names: list[str]
    columns: dict[str, np.ndarray] = field(repr=False)
    #: The metrics the run asked for (None: not recorded, an older file).
    metrics: tuple[str, ...] | None = None
    #: The set's per-sample CSV, if saved (it names the real rows the samples point at).
    table: Path | None = None
    #: The fingerprint of the set's images that the run recorded (None: not recorded).
    images_fingerprint: str | None = None
    #: The file the arrays were read from (named in messages).
    source_file: Path | None = None

    @property
    def rarity(self) -> np.ndarray:
        return self.columns["rarity"]

    @property
    def in_manifold(self) -> np.ndarray:
        return self.columns["in_manifold"]

    def __getattr__(self, name: str) -> Any:
        columns: dict[str, np.ndarray] | None = self.__dict__.get("columns")
        declared = not name.startswith("_") and name in column_declarations()
        if columns is None or (name not in columns and not declared):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return columns.get(name)

    def computed(self) -> tuple[str, ...]:
        """The metrics whose outputs this set holds: those the run recorded as asked for, else
        (an older file) those whose every column is here."""
        if self.metrics is not None:
            return self.metrics
        return tuple(
            metric.name
            for metric in registry().REGISTRY
            if metric.columns and all(c.name in self.columns for c in metric.columns)
        )


@dataclass
class Results:
    """A results directory as read: ``run.json`` (validated), the sets, the summary rows."""

    root: Path
    run: dict[str, Any]
    mode: str
    sets: list[SetResult]
    summary: list[dict[str, Any]]
    #: Leave-one-out rarity of the real set against its own manifold (compare mode), or None.
    reference_rarity: np.ndarray | None
    #: Names of the real rows (``None`` in datasets mode, where each set is its own reference,
    #: or when they were not saved).
    real_names: list[str] | None
    #: ``summary.json["comparisons"]``: the pairs of sets compared, each with its ``sentence``
    #: (empty for a run with one set, or an earlier version's output).
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    #: ``summary.json["stability"]`` (``--stability``), or None.
    stability: list[dict[str, Any]] | None = None

    @property
    def datasets_mode(self) -> bool:
        """Whether each set is scored against its own manifold (leave-one-out)."""
        return self.mode == "datasets"

    @property
    def columns(self) -> tuple[Column, ...]:
        """The declared per-sample columns some set holds, in table order."""
        held = {name for item in self.sets for name in item.columns}
        return tuple(c for c in column_declarations().values() if c.name in held)

    @property
    def values(self) -> tuple[SetValue, ...]:
        """The per-set values of a summary row after its name, in column order."""
        return row_values()

    def reference_names(self, item: SetResult) -> list[str] | None:
        """Names of the rows that ``item``'s neighbour indices refer to."""
        return item.names if self.datasets_mode else self.real_names

    def galleries(self, item: SetResult) -> tuple[Gallery, ...]:
        """The galleries the metrics ``item`` holds declare, whose columns it holds."""
        return tuple(
            gallery
            for gallery in registry().galleries_of(item.computed())
            if gallery.column in item.columns
            and (gallery.order_by is None or gallery.order_by in item.columns)
        )


def read_run(results_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``run.json`` of a results directory, validated (:func:`~rarity_score.io.run_record.
    validate_run`: every key the package reads is there, with its type); ValueError (one line
    naming the file and field) when ``results_dir`` is not one or its ``run.json`` is damaged."""
    return read_run_record(results_dir)


def read_summary(results_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The summary rows of a results directory (``summary.json``), one per set, in run order;
    ValueError (one line naming the file) when they are missing, damaged or not the run's sets."""
    run = read_run(results_dir)
    path = inside(Path(results_dir), "summary.json", str(results_dir))
    try:
        rows = summary_parts(read_json(path), str(path))[0]
    except FileNotFoundError as error:
        raise ValueError(f"{path} is missing: the results directory is incomplete") from error
    names = [entry["name"] for entry in run["sets"]]
    return validate_summary(
        rows, str(path), names, numbers=[v.key for v in row_values()], counts=_count_keys()
    )


def load_results(results_dir: str | os.PathLike[str]) -> Results:
    """Read ``run.json``, the summary and every set's arrays from a results directory.

    >>> import numpy as np, tempfile, pathlib
    >>> from rarity_score.compare import compare
    >>> rng = np.random.default_rng(0)
    >>> out = compare(rng.normal(size=(40, 3)), {"a": rng.normal(size=(20, 3))},
    ...               pathlib.Path(tempfile.mkdtemp()) / "run", report=False).path
    >>> results = load_results(out)
    >>> results.mode, [s.name for s in results.sets], results.sets[0].rarity.shape
    ('compare', ['a'], (20,))

    Raises :class:`ResultsError` with a one-line reason naming the file (and the field) when
    the directory is not a readable results directory.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"not a results directory: {root} does not exist or is not a folder")
    try:
        return _load(root)
    except ResultsError:
        raise
    except ValueError as error:  # the checks of run_record: already one line naming the file
        raise ResultsError(str(error)) from error


def _load(root: Path) -> Results:
    run = read_run_record(root)
    where = str(root / "run.json")
    mode = str(run["mode"])
    declared = column_declarations()
    # Slugs name files of the report: file-safe and distinct whatever run.json says.
    recorded = [str(entry.get("slug") or printable(entry["name"])) for entry in run["sets"]]
    sets = [
        _load_set(root, entry, f"{where}: field 'sets[{position}]", slug, declared)
        for position, (entry, slug) in enumerate(zip(run["sets"], slugs(recorded), strict=True))
    ]

    reference_rarity: np.ndarray | None = None
    real_names: list[str] | None = None
    real = run["real"]
    n_reference: int | None = real["n"] if real is not None else None
    reference = inside(root, run["reference_loo"] or "reference_loo.npz", where)
    if real is not None and reference.is_file():
        arrays = _read_npz(reference)
        _check_arrays(arrays, reference, _kinds(declared))
        if "rarity" in arrays:
            reference_rarity = np.asarray(arrays["rarity"], dtype=np.float64)
        if "names" in arrays:
            real_names = [printable(str(name)) for name in arrays["names"].tolist()]
        n_reference = _check_real_count(real, reference, arrays, where, declared)
    if mode != "datasets" and real_names is None:
        real_names = _real_names_from_tables(real, sets, declared)
    for item in sets:
        _check_indices(item, item.n if mode == "datasets" else n_reference, declared)

    names = [entry["name"] for entry in run["sets"]]
    summary, comparisons, stability = _load_summary(root, sets, names)
    return Results(
        root=root,
        run=run,
        mode=mode,
        sets=sets,
        summary=summary,
        reference_rarity=reference_rarity,
        real_names=real_names,
        comparisons=comparisons,
        stability=stability,
    )


def _kinds(declared: Mapping[str, Column]) -> dict[str, str]:
    """The arrays a file may hold that the reader reads, and the kind of values of each."""
    return {**{name: column.kind for name, column in declared.items()}, "names": "text"}


def _sizes(arrays: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, int]:
    return {key: int(value.size) for key, value in arrays.items() if key in kinds}


def _listed(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: {size}" for key, size in sizes.items())


def _check_real_count(
    real: dict[str, Any],
    path: Path,
    arrays: dict[str, np.ndarray],
    where: str,
    declared: Mapping[str, Column],
) -> int | None:
    """The number of real samples the reference arrays hold (None: no such array)."""
    sizes = _sizes(arrays, _kinds(declared))
    if len(set(sizes.values())) > 1:
        raise ResultsError(f"{path}: arrays of different lengths ({_listed(sizes)})")
    if real.get("n") is not None and sizes and set(sizes.values()) != {real["n"]}:
        raise ResultsError(
            f"{path} holds {next(iter(sizes.values()))} real samples but {where} says "
            f"real.n = {real['n']}"
        )
    return next(iter(sizes.values()), real.get("n"))


def _check_indices(item: SetResult, size: int | None, declared: Mapping[str, Column]) -> None:
    """Neighbour indices are rows of the reference (-1: none); out of range means damage."""
    for key, column in declared.items():
        values = item.columns.get(key)
        if column.kind != "index" or values is None or values.size == 0:
            continue
        low, high = int(values.min()), int(values.max())
        if low < -1 or (size is not None and high >= size):
            bound = f"below {size}" if size is not None else "an index"
            raise ResultsError(
                f"{item.source_file}: {key} holds {low if low < -1 else high}, not -1 or {bound} "
                "(the reference set's rows)"
            )


def _load_set(
    root: Path, entry: dict[str, Any], where: str, slug: str, declared: Mapping[str, Column]
) -> SetResult:
    name = printable(entry["name"])
    arrays_path = inside(root, entry["arrays"], f"{where}.arrays'")
    table_path = inside(root, entry["table"], f"{where}.table'")
    if arrays_path.is_file():
        arrays = _read_npz(arrays_path)
        source_file = arrays_path
    elif table_path.is_file():
        arrays = _arrays_from_csv(table_path, declared)
        source_file = table_path
    else:
        raise ResultsError(f"set {name!r}: neither {arrays_path} nor {table_path} exists")
    kinds = _kinds(declared)
    _check_arrays(arrays, source_file, kinds)
    if "rarity" not in arrays:
        raise ResultsError(f"{source_file}: no rarity array")
    sizes = _sizes(arrays, kinds)
    if len(set(sizes.values())) > 1:
        raise ResultsError(f"{source_file}: arrays of different lengths ({_listed(sizes)})")
    n = int(arrays["rarity"].size)
    if entry.get("n") is not None and entry["n"] != n:
        raise ResultsError(
            f"{source_file} holds {n} samples but {where}.n' = {entry['n']} in run.json"
        )
    columns = {
        key: np.asarray(arrays[key], dtype=_DTYPES[column.kind])
        for key, column in declared.items()
        if key in arrays
    }
    if "in_manifold" not in columns:
        columns["in_manifold"] = np.isfinite(columns["rarity"])
    metrics = None
    if "metrics" in arrays and arrays["metrics"].dtype.kind == "U" and arrays["metrics"].ndim == 1:
        metrics = tuple(str(metric) for metric in arrays["metrics"].tolist())
    if "names" in arrays:
        # Written through io.names.printable; an older or edited file may hold anything.
        names = [printable(str(value)) for value in arrays["names"].tolist()]
    else:
        names = [f"#{i}" for i in range(n)]
    return SetResult(
        name=name,
        slug=slug,
        source=entry["source"],
        kind=entry["kind"],
        n=n,
        n_skipped=int(entry["n_skipped"]),
        has_images=bool(entry["has_images"]),
        names=names,
        columns=columns,
        metrics=metrics,
        table=table_path if table_path.is_file() else None,
        images_fingerprint=entry["images_fingerprint"],
        source_file=source_file,
    )


def _check_arrays(arrays: dict[str, np.ndarray], path: Path, kinds: Mapping[str, str]) -> None:
    """Each array the reader reads is one-dimensional and of its kind (a damaged or edited file
    gives one line naming it, never a failure deep in the report)."""
    for key, kind in kinds.items():
        values = arrays.get(key)
        if values is None:
            continue
        if values.ndim != 1 or values.dtype.kind not in _KINDS[kind]:
            raise ResultsError(
                f"{path}: array {key!r} must be one-dimensional {_KIND_WORDS[kind]}, not "
                f"{values.dtype} of shape {values.shape}"
            )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle stays off: a results directory may come from elsewhere, and names are
    # saved as a unicode array by the format.
    try:
        with open_npz(path) as data:
            # Each header is checked before its array is read: a hostile one can declare
            # exabytes.
            return {key: read_npz_array(data, key, path, numeric=False) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ResultsError(f"{path}: cannot read the arrays ({one_line(error, 200)})") from error


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ResultsError(f"{path}: cannot read ({one_line(error, 200)})") from error


_INT64 = np.iinfo(np.int64)
_CELL_KINDS = {
    "bool": "true or false",
    "float": "a number",
    "int": "a 64-bit integer",
    "index": "a 64-bit integer",
}


def _cell(text: str | None, kind: str) -> Any:
    """A CSV cell read back as written (:func:`rarity_score.io.names.csv_value`); an empty cell
    is NaN for a number and -1 (none) for an index. ValueError for a cell that is none of these
    (a boolean that is not ``true``/``false``, a whole number beyond 64 bits)."""
    text = (text or "").strip()
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if kind == "float":
        return float(text) if text else float("nan")
    if not text:
        return -1
    value = int(text)
    if not _INT64.min <= value <= _INT64.max:
        raise ValueError(text)
    return value


def _arrays_from_csv(path: Path, declared: Mapping[str, Column]) -> dict[str, np.ndarray]:
    """The per-sample arrays from a set's CSV (used only when its ``.npz`` is missing)."""
    rows = _read_csv(path)
    arrays: dict[str, np.ndarray] = {}
    if rows and "name" in rows[0]:
        # Name cells were neutralised for spreadsheets (io.names.csv_cell): undo it.
        names = [uncsv_cell(row["name"] or "") for row in rows]
        arrays["names"] = np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1")
    for key, column in declared.items():
        if not rows or key not in rows[0]:
            continue
        values = []
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            try:
                values.append(_cell(row[key], column.kind))
            except (TypeError, ValueError) as error:
                raise ResultsError(
                    f"{path}: line {number}, column {key!r}: not {_CELL_KINDS[column.kind]} "
                    f"({shorten(repr(row[key]), 40)})"
                ) from error
        arrays[key] = np.array(values, dtype=_DTYPES[column.kind])
    if not rows:
        arrays["rarity"] = np.zeros(0)
    return arrays


def _neighbour_names_from_csv(path: Path, declared: Mapping[str, Column]) -> dict[int, str]:
    """Reference row index -> name, from the companion name columns of the index columns."""
    pairs = [
        (c.name, c.names_column) for c in declared.values() if c.kind == "index" and c.names_column
    ]
    found: dict[int, str] = {}
    for number, row in enumerate(_read_csv(path), start=2):
        for index_key, name_key in pairs:
            index, name = row.get(index_key) or "", row.get(name_key) or ""
            if index and name:
                try:
                    found[int(index)] = uncsv_cell(name)
                except ValueError as error:
                    raise ResultsError(
                        f"{path}: line {number}, column {index_key!r}: not an integer "
                        f"({shorten(repr(index), 40)})"
                    ) from error
    return found


def _real_names_from_tables(
    real: dict[str, Any] | None, sets: Sequence[SetResult], declared: Mapping[str, Column]
) -> list[str] | None:
    """Names of the real rows gathered from the sets' CSV files, where ``reference_loo.npz``
    does not list them (only the rows some sample points at are known; others stay empty)."""
    n_real = int((real or {}).get("n") or 0)
    if n_real <= 0:
        return None
    found: dict[int, str] = {}
    for item in sets:
        if item.table is None:
            continue
        for index, name in _neighbour_names_from_csv(item.table, declared).items():
            if 0 <= index < n_real:
                found[index] = name
    if not found:
        return None
    # As long as the highest row named (not n_real, which run.json could make absurdly large):
    # a shorter list reads as "name not saved" beyond it.
    names = [""] * (max(found) + 1)
    for index, name in found.items():
        names[index] = name
    return names


def summary_parts(data: Any, where: str) -> tuple[Any, list[dict[str, Any]], Any]:
    """The rows, comparisons and stability steps of a parsed ``summary.json`` (format 2: an
    object; format 1: the list of rows), checked: comparisons a list of objects with string
    ``a``, ``b`` and ``sentence``; stability a list of objects with a number ``fraction`` and
    summary rows ``sets``, or null. The rows are returned as found (the caller validates them
    against run.json); ValueError naming ``where`` otherwise."""
    if not isinstance(data, dict):
        return data, [], None
    rows = next((data[key] for key in ("sets", "rows", "summary") if key in data), data)
    comparisons = data.get("comparisons")
    comparisons = [] if comparisons is None else comparisons
    if not isinstance(comparisons, list):
        raise ValueError(
            f"{where}: field 'comparisons' must be a list, not {json_type(comparisons)}"
        )
    for i, entry in enumerate(comparisons):
        fields = Fields(where, f"comparisons[{i}]", entry)
        for key in ("a", "b", "sentence"):
            fields.string(key, required=True)
        fields.string("caveat")
        for key in ("n_a", "n_b"):
            fields.integer(key)
        for key in ("mean_difference", "median_difference", "mann_whitney_u"):
            fields.number(key, -math.inf, math.inf)
        for key in ("p_value", "probability_a_rarer", "level"):
            fields.number(key, 0.0, 1.0)
        for key in ("mean_difference_ci", "median_difference_ci"):
            fields.interval(key)
    stability = data.get("stability")
    if stability is not None:
        if not isinstance(stability, list):
            raise ValueError(f"{where}: field 'stability' must be a list or null")
        for i, step in enumerate(stability):
            fields = Fields(where, f"stability[{i}]", step)
            fraction = step.get("fraction")
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                raise fields.fail("fraction", "a number")
            validate_summary(
                step.get("sets"),
                f"{where} (stability[{i}].sets)",
                numbers=[v.key for v in row_values()] + ["n_reference"],
                counts=[*_count_keys(), "n_reference"],
            )
    return rows, comparisons, stability


def _load_summary(
    root: Path, sets: list[SetResult], names: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The summary rows from ``summary.json`` (or ``summary.csv``), in the order of the sets,
    with the comparisons and stability steps of ``summary.json`` (:func:`summary_parts`)."""
    rows: list[dict[str, Any]] | None = None
    comparisons: list[dict[str, Any]] = []
    stability = None
    where = str(root)
    path = inside(root, "summary.json", where)
    if path.is_file():
        data, comparisons, stability = summary_parts(read_json(path), str(path))
        rows = validate_summary(
            data, str(path), names, numbers=[v.key for v in row_values()], counts=_count_keys()
        )
    csv_path = inside(root, "summary.csv", where)
    if rows is None and csv_path.is_file():
        known = {value.key for value in row_values()}
        rows = [
            {
                key: (
                    uncsv_cell(value or "")
                    if key == "name"
                    else _number(value, strict=key in known)
                )
                for key, value in row.items()
                if isinstance(key, str)
            }
            for row in _read_csv(csv_path)
        ]
        rows = [_intervals_of_csv(row) for row in rows]
        # The same checks as summary.json: a damaged cell is one line naming the file and line.
        rows = validate_summary(
            rows, str(csv_path), names, numbers=list(known), counts=_count_keys(), first_line=2
        )
    if rows is not None:
        rows = [{**row, "name": printable(str(row.get("name") or ""))} for row in rows]
    if rows is None:
        # No summary saved: show the counts the arrays hold, and nothing that needs the
        # metrics (precision & co. stay empty rather than recomputed).
        rows = [_counts(item) for item in sets]
    return rows, comparisons, stability


def _intervals_of_csv(row: dict[str, Any]) -> dict[str, Any]:
    """A ``summary.csv`` row with its ``<key>_ci_low`` / ``<key>_ci_high`` cells made the
    ``<key>_ci`` of ``summary.json`` (None when both are empty; a lone end stays as it is, for
    the validation to refuse)."""
    out = dict(row)
    for key in [key for key in row if key.endswith("_ci_low")]:
        base = key[: -len("_low")]
        low, high = out.pop(key), out.pop(f"{base}_high", None)
        out[base] = None if low is None and high is None else [low, high]
    return out


def _count_keys() -> list[str]:
    return [value.key for value in row_values() if value.kind == "count"]


def _number(text: str | None, *, strict: bool = False) -> float | int | str | None:
    """A summary cell as a number (None when empty); text that is no number is None, or with
    ``strict`` (a column the reader knows) kept as text for the validation to name."""
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text if strict else None


def _counts(item: SetResult) -> dict[str, Any]:
    n_in = int(item.in_manifold.sum())
    return {
        "name": item.name,
        "n": item.n,
        "n_in_manifold": n_in,
        "fraction_in_manifold": n_in / item.n if item.n else None,
        "n_out_of_manifold": item.n - n_in,
    }
