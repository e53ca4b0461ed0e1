"""Reading a results directory (``docs/dev/report-contract.md``) for the report.

Only what is saved is read; nothing is recomputed. Files written by other versions may lack an
array or a summary file: what is missing is shown as missing, never invented.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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

    Raises :class:`ReportError` with a one-line reason when the directory or ``run.json`` is
    missing or unreadable, or a set's arrays cannot be found.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"not a results directory: {root} does not exist or is not a folder")
    run_path = root / "run.json"
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ReportError(f"{root} has no run.json: not a results directory") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{run_path}: cannot read ({error})") from error
    if not isinstance(run, dict) or not isinstance(run.get("sets"), list):
        raise ReportError(f"{run_path}: not a results description (no list of sets)")
    mode = str(run.get("mode") or "compare")

    sets: list[SetResult] = []
    used: set[str] = set()
    for position, entry in enumerate(run["sets"]):
        if not isinstance(entry, dict):
            raise ReportError(f"{run_path}: set {position} is not an object")
        item = _load_set(root, entry, position)
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
    reference = root / "reference_loo.npz"
    if reference.is_file():
        arrays = _read_npz(reference)
        if "rarity" in arrays:
            reference_rarity = np.asarray(arrays["rarity"], dtype=np.float64)
        if "names" in arrays:
            real_names = [str(name) for name in arrays["names"].tolist()]
    if mode != "datasets" and real_names is None:
        real_names = _real_names_from_tables(run, sets)

    return Results(
        root=root,
        run=run,
        mode=mode,
        sets=sets,
        summary=_load_summary(root, sets),
        reference_rarity=reference_rarity,
        real_names=real_names,
    )


def _load_set(root: Path, entry: dict[str, Any], position: int) -> SetResult:
    name = str(entry.get("name", f"set {position + 1}"))
    slug = safe_slug(str(entry.get("slug") or name))
    arrays_path = root / str(entry.get("arrays") or f"sets/{slug}.npz")
    table_path = root / str(entry.get("table") or f"sets/{slug}.csv")
    arrays: dict[str, np.ndarray] = {}
    if arrays_path.is_file():
        arrays = _read_npz(arrays_path)
    elif table_path.is_file():
        arrays = _arrays_from_csv(table_path)
    else:
        raise ReportError(f"set {name!r}: neither {arrays_path} nor {table_path} exists")

    rarity = np.asarray(arrays.get("rarity", np.zeros(0)), dtype=np.float64)
    if "in_manifold" in arrays:
        in_manifold = np.asarray(arrays["in_manifold"], dtype=bool)
    else:
        in_manifold = np.isfinite(rarity)
    n = int(in_manifold.size)
    if rarity.size != n:
        raise ReportError(f"set {name!r}: {rarity.size} rarity values for {n} samples")
    if "names" in arrays:
        names = [str(value) for value in arrays["names"].tolist()]
    else:
        names = [f"#{i}" for i in range(n)]
    if len(names) != n:
        raise ReportError(f"set {name!r}: {len(names)} names for {n} samples")

    optional: dict[str, np.ndarray | None] = {}
    for key in (*_FLOAT_ARRAYS[1:], *_INT_ARRAYS):
        values = arrays.get(key)
        if values is not None and np.asarray(values).size != n:
            raise ReportError(f"set {name!r}: {key} has {np.asarray(values).size} values, not {n}")
        if values is None:
            optional[key] = None
        elif key in _INT_ARRAYS:
            optional[key] = np.asarray(values, dtype=np.int64)
        else:
            optional[key] = np.asarray(values, dtype=np.float64)

    item = SetResult(
        name=name,
        slug=slug,
        source=None if entry.get("source") is None else str(entry["source"]),
        kind=None if entry.get("kind") is None else str(entry["kind"]),
        n=n,
        n_skipped=int(entry.get("n_skipped") or 0),
        has_images=bool(entry.get("has_images", False)),
        names=names,
        rarity=rarity,
        in_manifold=in_manifold,
        table=table_path if table_path.is_file() else None,
        **optional,
    )
    return item


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle stays off: a results directory may come from elsewhere, and names are
    # saved as a unicode array by the contract.
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise ReportError(f"{path}: cannot read the arrays ({error})") from error


def _float_cell(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


def _int_cell(text: str) -> int:
    return int(text) if text not in ("", None) else -1


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ReportError(f"{path}: cannot read ({error})") from error


def _arrays_from_csv(path: Path) -> dict[str, np.ndarray]:
    """The per-sample arrays from a set's CSV (used only when its ``.npz`` is missing)."""
    rows = _read_csv(path)
    arrays: dict[str, np.ndarray] = {}
    if rows and "name" in rows[0]:
        arrays["names"] = np.array([row["name"] for row in rows], dtype=str)
    if rows and "in_manifold" in rows[0]:
        arrays["in_manifold"] = np.array([row["in_manifold"] == "true" for row in rows])
    for key in _FLOAT_ARRAYS:
        if rows and key in rows[0]:
            arrays[key] = np.array([_float_cell(row[key]) for row in rows], dtype=np.float64)
    for key in _INT_ARRAYS:
        if rows and key in rows[0]:
            arrays[key] = np.array([_int_cell(row[key]) for row in rows], dtype=np.int64)
    if not rows:
        arrays["rarity"] = np.zeros(0)
    return arrays


def _neighbour_names_from_csv(path: Path) -> dict[int, str]:
    """Reference row index -> name, from the ``sphere_name`` / ``nearest_real_name`` columns."""
    found: dict[int, str] = {}
    for row in _read_csv(path):
        for index_key, name_key in (
            ("sphere_index", "sphere_name"),
            ("nearest_real_index", "nearest_real_name"),
        ):
            index, name = row.get(index_key) or "", row.get(name_key) or ""
            if index and name:
                found[int(index)] = name
    return found


def _real_names_from_tables(run: dict[str, Any], sets: list[SetResult]) -> list[str] | None:
    """Names of the real rows gathered from the sets' CSV files, where ``reference_loo.npz``
    does not list them (only the rows some sample points at are known; others stay empty)."""
    real = run.get("real") or {}
    n_real = int(real.get("n") or 0)
    if n_real <= 0:
        return None
    names = [""] * n_real
    known = False
    for item in sets:
        if item.table is None:
            continue
        for index, name in _neighbour_names_from_csv(item.table).items():
            if 0 <= index < n_real:
                names[index] = name
                known = True
    return names if known else None


def _load_summary(root: Path, sets: list[SetResult]) -> list[dict[str, Any]]:
    """The summary rows from ``summary.json`` (or ``summary.csv``), in the order of the sets."""
    rows: list[dict[str, Any]] | None = None
    path = root / "summary.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ReportError(f"{path}: cannot read ({error})") from error
        if isinstance(data, dict):
            data = next(
                (
                    data[key]
                    for key in ("sets", "rows", "summary")
                    if isinstance(data.get(key), list)
                ),
                None,
            )
        if isinstance(data, list) and all(isinstance(row, dict) for row in data):
            rows = data
    if rows is None and (root / "summary.csv").is_file():
        rows = [
            {key: (_number(value) if key != "name" else value) for key, value in row.items()}
            for row in _read_csv(root / "summary.csv")
        ]
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
