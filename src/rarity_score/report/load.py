"""Reading a results directory (``docs/dev/report-contract.md``) for the report.

Only what is saved is read; nothing is recomputed. Files written by other versions may lack an
array or a summary file: what is missing is shown as missing, never invented.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score.io.features import open_npz, read_npz_array
from rarity_score.io.names import printable, shorten, uncsv_cell
from rarity_score.io.run_record import inside, read_json, read_run_record, validate_summary

__all__ = ["ReportError", "Results", "SetResult", "load_results"]

_FLOAT_ARRAYS = ("rarity", "nearest_real_distance", "realism")
_INT_ARRAYS = ("sphere_index", "nearest_real_index", "sphere_count")


class ReportError(ValueError):
    """The results directory cannot be read: missing ``run.json``, a damaged file, a bad layout."""


@dataclass
class SetResult:
    """One set of a results directory: its description from ``run.json`` and its arrays.

    Arrays absent from the saved file are ``None``. ``in_manifold`` is always present (derived
    from ``rarity`` being finite when the file lacks it). Indices of out-of-manifold samples are
    -1 in ``sphere_index``.
    """

    name: str
    slug: str
    source: str | None
    kind: str | None
    n: int
    n_skipped: int
    has_images: bool
    names: list[str]
    rarity: np.ndarray
    in_manifold: np.ndarray
    sphere_index: np.ndarray | None = None
    nearest_real_index: np.ndarray | None = None
    nearest_real_distance: np.ndarray | None = None
    realism: np.ndarray | None = None
    sphere_count: np.ndarray | None = None
    #: The set's per-sample CSV, if saved (it names the real rows the samples point at).
    table: Path | None = None
    #: The fingerprint of the set's images that the run recorded (None: not recorded).
    images_fingerprint: str | None = None
    #: The file the arrays were read from (named in messages).
    source_file: Path | None = None


@dataclass
class Results:
    """A results directory as the report sees it."""

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

    @property
    def datasets_mode(self) -> bool:
        """Whether each set is scored against its own manifold (leave-one-out)."""
        return self.mode == "datasets"

    def reference_names(self, item: SetResult) -> list[str] | None:
        """Names of the rows that ``item``'s neighbour indices refer to."""
        return item.names if self.datasets_mode else self.real_names


def safe_slug(text: str) -> str:
    """A file-safe version of ``text`` (letters, digits, ``._-``), never empty or hidden.

    >>> safe_slug("psi=0.7"), safe_slug("../x"), safe_slug("")
    ('psi_0.7', 'x', 'set')
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return slug or "set"


def load_results(results_dir: str | os.PathLike[str]) -> Results:
    """Read ``run.json``, the summary and every set's arrays from a results directory.

    The directory is untrusted input: ``run.json`` is validated
    (:func:`rarity_score.io.run_record.validate_run`), every file read must lie inside the
    directory (no ``..``, no absolute path, no symbolic link leading out), and every array is
    checked for its type, shape and length before use. Raises :class:`ReportError` with a
    one-line reason naming the file (and the field) otherwise.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"not a results directory: {root} does not exist or is not a folder")
    try:
        return _load(root)
    except ReportError:
        raise
    except ValueError as error:  # the checks of run_record: already one line naming the file
        raise ReportError(str(error)) from error


def _load(root: Path) -> Results:
    run = read_run_record(root)
    where = str(root / "run.json")
    mode = str(run["mode"])

    sets: list[SetResult] = []
    used: set[str] = set()
    for position, entry in enumerate(run["sets"]):
        item = _load_set(root, entry, f"{where}: field 'sets[{position}]", position)
        # Slugs name files of the report; they must be file-safe and distinct whatever run.json
        # says.
        slug, suffix = item.slug, 2
        while slug.lower() in used:
            slug, suffix = f"{item.slug}-{suffix}", suffix + 1
        item.slug = slug
        used.add(slug.lower())
        sets.append(item)

    reference_rarity: np.ndarray | None = None
    real_names: list[str] | None = None
    real = run["real"]
    n_reference: int | None = real["n"] if real is not None else None
    reference = inside(root, run["reference_loo"] or "reference_loo.npz", where)
    if real is not None and reference.is_file():
        arrays = _read_npz(reference)
        _check_arrays(
            arrays, reference, {"rarity": "float", "names": "text", "in_manifold": "bool"}
        )
        if "rarity" in arrays:
            reference_rarity = np.asarray(arrays["rarity"], dtype=np.float64)
        if "names" in arrays:
            real_names = [printable(str(name)) for name in arrays["names"].tolist()]
        n_reference = _check_real_count(real, reference, arrays, where)
    if mode != "datasets" and real_names is None:
        real_names = _real_names_from_tables(real, sets)
    for item in sets:
        _check_indices(item, item.n if mode == "datasets" else n_reference)

    return Results(
        root=root,
        run=run,
        mode=mode,
        sets=sets,
        summary=_load_summary(root, sets, [entry["name"] for entry in run["sets"]]),
        reference_rarity=reference_rarity,
        real_names=real_names,
    )


def _check_real_count(
    real: dict[str, Any], path: Path, arrays: dict[str, np.ndarray], where: str
) -> int | None:
    """The number of real samples the reference arrays hold (None: no such array)."""
    sizes = {key: int(value.size) for key, value in arrays.items() if key in _REFERENCE_ARRAYS}
    if len(set(sizes.values())) > 1:
        raise ReportError(f"{path}: arrays of different lengths ({_sizes(sizes)})")
    if real.get("n") is not None and sizes and set(sizes.values()) != {real["n"]}:
        raise ReportError(
            f"{path} holds {next(iter(sizes.values()))} real samples but {where} says "
            f"real.n = {real['n']}"
        )
    return next(iter(sizes.values()), real.get("n"))


def _check_indices(item: SetResult, size: int | None) -> None:
    """Neighbour indices are rows of the reference (-1: none); out of range means damage."""
    for key in ("sphere_index", "nearest_real_index"):
        values = getattr(item, key)
        if values is None or values.size == 0:
            continue
        low, high = int(values.min()), int(values.max())
        if low < -1 or (size is not None and high >= size):
            bound = f"below {size}" if size is not None else "an index"
            raise ReportError(
                f"{item.source_file}: {key} holds {low if low < -1 else high}, not -1 or {bound} "
                "(the reference set's rows)"
            )


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{key}: {size}" for key, size in sizes.items())


def _load_set(root: Path, entry: dict[str, Any], field: str, position: int) -> SetResult:
    name = printable(entry["name"])
    slug = safe_slug(str(entry.get("slug") or name))
    arrays_path = inside(root, entry["arrays"], f"{field}.arrays'")
    table_path = inside(root, entry["table"], f"{field}.table'")
    arrays: dict[str, np.ndarray] = {}
    if arrays_path.is_file():
        arrays = _read_npz(arrays_path)
        source_file = arrays_path
    elif table_path.is_file():
        arrays = _arrays_from_csv(table_path)
        source_file = table_path
    else:
        raise ReportError(f"set {name!r}: neither {arrays_path} nor {table_path} exists")
    _check_arrays(arrays, source_file, _SET_ARRAYS)
    if "rarity" not in arrays:
        raise ReportError(f"{source_file}: no rarity array")

    rarity = np.asarray(arrays["rarity"], dtype=np.float64)
    if "in_manifold" in arrays:
        in_manifold = np.asarray(arrays["in_manifold"], dtype=bool)
    else:
        in_manifold = np.isfinite(rarity)
    n = int(rarity.size)
    sizes = {key: int(value.size) for key, value in arrays.items() if key in _SET_ARRAYS}
    if len(set(sizes.values())) > 1:
        raise ReportError(f"{source_file}: arrays of different lengths ({_sizes(sizes)})")
    if entry.get("n") is not None and entry["n"] != n:
        raise ReportError(
            f"{source_file} holds {n} samples but {field}.n' = {entry['n']} in run.json"
        )
    if "names" in arrays:
        # Written through io.names.printable; an older or edited file may hold anything.
        names = [printable(str(value)) for value in arrays["names"].tolist()]
    else:
        names = [f"#{i}" for i in range(n)]

    optional: dict[str, np.ndarray | None] = {}
    for key in (*_FLOAT_ARRAYS[1:], *_INT_ARRAYS):
        values = arrays.get(key)
        if values is None:
            optional[key] = None
        elif key in _INT_ARRAYS:
            optional[key] = np.asarray(values, dtype=np.int64)
        else:
            optional[key] = np.asarray(values, dtype=np.float64)

    return SetResult(
        name=name,
        slug=slug,
        source=entry["source"],
        kind=entry["kind"],
        n=n,
        n_skipped=int(entry["n_skipped"]),
        has_images=bool(entry["has_images"]),
        names=names,
        rarity=rarity,
        in_manifold=in_manifold,
        table=table_path if table_path.is_file() else None,
        images_fingerprint=entry["images_fingerprint"],
        source_file=source_file,
        **optional,
    )


#: The arrays of a set's ``.npz`` the report reads, and the kind of values each must hold.
_SET_ARRAYS: dict[str, str] = {
    "rarity": "float",
    "nearest_real_distance": "float",
    "realism": "float",
    "sphere_index": "int",
    "nearest_real_index": "int",
    "sphere_count": "int",
    "in_manifold": "bool",
    "names": "text",
}
_REFERENCE_ARRAYS = ("rarity", "names", "in_manifold")
_KINDS = {"float": "fiu", "int": "iu", "bool": "b", "text": "U"}
_KIND_WORDS = {
    "float": "numbers",
    "int": "integers",
    "bool": "true/false values",
    "text": "text (a unicode array)",
}


def _check_arrays(arrays: dict[str, np.ndarray], path: Path, expected: dict[str, str]) -> None:
    """Each array the report reads is one-dimensional and of its kind (a damaged or edited file
    gives one line naming it, never a failure deep in the report)."""
    for key, kind in expected.items():
        values = arrays.get(key)
        if values is None:
            continue
        if values.ndim != 1 or values.dtype.kind not in _KINDS[kind]:
            raise ReportError(
                f"{path}: array {key!r} must be one-dimensional {_KIND_WORDS[kind]}, not "
                f"{values.dtype} of shape {values.shape}"
            )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle stays off: a results directory may come from elsewhere, and names are
    # saved as a unicode array by the contract.
    try:
        with open_npz(path) as data:
            # Each header is checked before its array is read: a hostile one can declare
            # exabytes.
            return {key: read_npz_array(data, key, path, numeric=False) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ReportError(f"{path}: cannot read the arrays ({_one_line(error)})") from error


def _one_line(error: BaseException) -> str:
    return shorten(" ".join(str(error).split()), 200)


def _float_cell(text: str | None) -> float:
    return float(text) if text not in ("", None) else float("nan")


def _int_cell(text: str | None) -> int:
    return int(text) if text not in ("", None) else -1


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ReportError(f"{path}: cannot read ({_one_line(error)})") from error


def _arrays_from_csv(path: Path) -> dict[str, np.ndarray]:
    """The per-sample arrays from a set's CSV (used only when its ``.npz`` is missing)."""
    rows = _read_csv(path)
    arrays: dict[str, np.ndarray] = {}
    if rows and "name" in rows[0]:
        # Name cells were neutralised for spreadsheets (io.names.csv_cell): undo it.
        names = [uncsv_cell(row["name"] or "") for row in rows]
        arrays["names"] = np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1")
    if rows and "in_manifold" in rows[0]:
        arrays["in_manifold"] = np.array([row["in_manifold"] == "true" for row in rows])
    for keys, cell, dtype in (
        (_FLOAT_ARRAYS, _float_cell, np.float64),
        (_INT_ARRAYS, _int_cell, np.int64),
    ):
        for key in keys:
            if not rows or key not in rows[0]:
                continue
            values = []
            for number, row in enumerate(rows, start=2):  # line 1 is the header
                try:
                    values.append(cell(row[key]))
                except (TypeError, ValueError) as error:
                    raise ReportError(
                        f"{path}: line {number}, column {key!r}: not a number "
                        f"({shorten(repr(row[key]), 40)})"
                    ) from error
            arrays[key] = np.array(values, dtype=dtype)
    if not rows:
        arrays["rarity"] = np.zeros(0)
    return arrays


def _neighbour_names_from_csv(path: Path) -> dict[int, str]:
    """Reference row index -> name, from the ``sphere_name`` / ``nearest_real_name`` columns."""
    found: dict[int, str] = {}
    for number, row in enumerate(_read_csv(path), start=2):
        for index_key, name_key in (
            ("sphere_index", "sphere_name"),
            ("nearest_real_index", "nearest_real_name"),
        ):
            index, name = row.get(index_key) or "", row.get(name_key) or ""
            if index and name:
                try:
                    found[int(index)] = uncsv_cell(name)
                except ValueError as error:
                    raise ReportError(
                        f"{path}: line {number}, column {index_key!r}: not an integer "
                        f"({shorten(repr(index), 40)})"
                    ) from error
    return found


def _real_names_from_tables(real: dict[str, Any] | None, sets: list[SetResult]) -> list[str] | None:
    """Names of the real rows gathered from the sets' CSV files, where ``reference_loo.npz``
    does not list them (only the rows some sample points at are known; others stay empty)."""
    n_real = int((real or {}).get("n") or 0)
    if n_real <= 0:
        return None
    found: dict[int, str] = {}
    for item in sets:
        if item.table is None:
            continue
        for index, name in _neighbour_names_from_csv(item.table).items():
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


def _load_summary(root: Path, sets: list[SetResult], names: list[str]) -> list[dict[str, Any]]:
    """The summary rows from ``summary.json`` (or ``summary.csv``), in the order of the sets."""
    rows: list[dict[str, Any]] | None = None
    where = str(root)
    path = inside(root, "summary.json", where)
    if path.is_file():
        data = read_json(path)
        if isinstance(data, dict):  # tolerated: an object holding the list of rows
            data = next((data[key] for key in ("sets", "rows", "summary") if key in data), data)
        rows = validate_summary(data, str(path), names)
    csv_path = inside(root, "summary.csv", where)
    if rows is None and csv_path.is_file():
        rows = [
            {
                key: (_number(value) if key != "name" else uncsv_cell(value or ""))
                for key, value in row.items()
                if isinstance(key, str)
            }
            for row in _read_csv(csv_path)
        ]
    if rows is not None:
        rows = [{**row, "name": printable(str(row.get("name") or ""))} for row in rows]
    if rows is None:
        # No summary saved: show the counts the arrays hold, and nothing that needs the
        # metrics (precision & co. stay empty rather than recomputed).
        rows = [_counts(item) for item in sets]
    return rows


def _number(text: str | None) -> float | int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def _counts(item: SetResult) -> dict[str, Any]:
    n_in = int(item.in_manifold.sum())
    return {
        "name": item.name,
        "n": item.n,
        "n_in_manifold": n_in,
        "fraction_in_manifold": n_in / item.n if item.n else None,
        "n_out_of_manifold": item.n - n_in,
    }
