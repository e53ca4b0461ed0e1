"""Reading a results directory's own description (``run.json``, ``summary.json``) as untrusted
input: a results directory may come from someone else.

The reader of the format (:mod:`rarity_score.results_dir`, which the report reads through)
goes through :func:`read_run_record` and :func:`validate_summary`, so that a damaged or edited
file gives one line naming the file and the field (a :class:`ValueError`), never a ``KeyError``
deep inside a command. The record is validated for what the package reads (required keys and
their types); keys it does not know are kept as they are, so newer writers may add some.

- JSON is parsed strictly: ``NaN`` / ``Infinity`` are not JSON and are refused, and so is a
  document nested too deeply to parse.
- File names recorded in ``run.json`` (a set's ``table`` and ``arrays``, ``reference_loo``) must
  be relative paths inside the results directory; :func:`inside` also refuses one that leaves it
  through a symbolic link.
- ``images_fingerprint`` of an input (``sets[i]``, ``real``) is the
  :meth:`~rarity_score.io.images.ImageCollection.fingerprint` of its image source when the run
  used it. The report opens no image of a source whose fingerprint is not the recorded one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from rarity_score.io.files import open_regular

__all__ = [
    "COMPARABILITY",
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGE_KINDS",
    "METHODS",
    "SPACES_MODE",
    "Fields",
    "check_format",
    "inside",
    "is_spaces_output",
    "is_spaces_run",
    "json_type",
    "notes",
    "read_json",
    "read_run_record",
    "validate_run",
    "validate_summary",
]

#: ``run.json["format"]`` of a results directory, and the newest layout version this package
#: reads.
FORMAT = "rarity-score/results"
#: 2: ``summary.json`` is ``{"sets": rows, "comparisons", "stability"}`` (1: the rows).
FORMAT_VERSION = 2

#: ``run.json["method"]`` of each mode, in words (used when an older record has no method).
METHODS: dict[str, str] = {
    "compare": "generated sets scored against the real manifold",
    "score": "generated sets scored against the real manifold",
    "datasets": "each dataset scored against its own manifold, leave-one-out",
}

#: ``run.json["mode"]`` of an output of ``rarity spaces``: the same ``format``, but no results
#: directory (it compares several); :func:`read_run_record` says so rather than naming a field.
SPACES_MODE = "spaces"

#: Input kinds whose images can be opened again from ``source``.
IMAGE_KINDS = ("folder", "archive", "list", "image")

#: What every output that holds scores says of them: the one text of the comparability note
#: (``run.json``, the JSON of ``rarity score``, the printed tables, ``--help``, the report).
COMPARABILITY = (
    "Rarity scores are distances in feature space: they are comparable only between runs that "
    "use the same feature extractor, the same real reference set and the same k."
)

_NOTES: dict[str, str] = {
    "rarity": (
        "a sample outside every k-NN sphere of its reference has no rarity score (NaN in .npz, "
        "empty in CSV, null in JSON) and is counted as out of the manifold; rarity statistics "
        "are over in-manifold samples only"
    ),
    "comparability": COMPARABILITY,
    "leave-one-out": (
        "each sample of a set is scored against the k-NN spheres of the other samples of the "
        "same set (its own sphere left out; the other samples' radii are those of the full set)"
    ),
}


def notes(*, leave_one_out: bool) -> dict[str, str]:
    """``run.json["notes"]``: the conventions of the record in words; the leave-one-out note
    where the run scored some set against its own manifold (the real set's reference curve, or
    every dataset)."""
    return {key: text for key, text in _NOTES.items() if key != "leave-one-out" or leave_one_out}


# ---------------------------------------------------------------------- files


def _refuse_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON value (write null for a missing number)")


def read_json(path: Path) -> Any:
    """Parse the JSON file ``path`` strictly; any problem is one ValueError naming the file.

    ``FileNotFoundError`` is left to the caller (who knows what a missing file means).
    """
    try:
        with open_regular(path) as file:  # a pipe in its place is refused, not waited on
            text = file.read().decode("utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"{path}: cannot read ({reason})") from error
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise ValueError(f"{path}: cannot read (nested too deeply to be a results file)") from error
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: cannot read: not valid JSON ({error})") from error


def inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refused (ValueError naming ``where``) when it would lead out of
    ``root``: an absolute path, a ``..`` part, a backslash, or a symbolic link pointing outside.

    The file need not exist.
    """
    _check_relative(relative, where)
    path = root.joinpath(*relative.split("/"))
    base = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([base, real]) != base:
        raise ValueError(f"{where}: {relative!r} leads out of the results directory {root}")
    return path


def _check_relative(relative: str, where: str) -> None:
    parts = relative.split("/")
    if (
        not relative
        or "\\" in relative
        or "\0" in relative
        or PurePosixPath(relative).is_absolute()
        or os.path.isabs(relative)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(
            f"{where} must be a relative path inside the results directory (like "
            f"'sets/NAME.csv'), not {_shown(relative)}"
        )


def is_spaces_run(run: Any) -> bool:
    """Whether the parsed ``run.json`` ``run`` is that of an output of ``rarity spaces``.

    >>> is_spaces_run({"format": FORMAT, "mode": SPACES_MODE}), is_spaces_run({"mode": "compare"})
    (True, False)
    """
    return isinstance(run, dict) and run.get("format") == FORMAT and run.get("mode") == SPACES_MODE


def is_spaces_output(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds the ``run.json`` of an output of ``rarity spaces`` (read, not
    yet validated: the reader of that output does that)."""
    try:
        return is_spaces_run(read_json(Path(folder) / "run.json"))
    except (OSError, ValueError):  # no such file, or not one that could be ours
        return False


def read_run_record(results_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``run.json`` of ``results_dir`` (see :func:`validate_run`).

    Raises ValueError with one line: no such folder, no ``run.json`` (not a results directory),
    a file that is not JSON, or a field of the wrong type.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a results directory: no such folder")
    path = inside(folder, "run.json", str(folder))
    try:
        run = read_json(path)
    except FileNotFoundError as error:
        raise ValueError(
            f"{folder} is not a results directory (no run.json written by rarity compare, "
            "rarity datasets or rarity score --report)"
        ) from error
    if is_spaces_run(run):
        raise ValueError(
            f"{folder} is the output of `rarity spaces`; give one of the results directories "
            "it compares"
        )
    return validate_run(run, str(path))


# ---------------------------------------------------------------------- validation


def json_type(value: Any) -> str:
    """How a message names the JSON type of ``value`` (``"a string"``, ``"null"``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    from rarity_score.io.names import shorten

    return shorten(repr(value), 60)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number (not true/false), else None; an
    integer too large for a float (JSON allows any number of digits) is not one.

    >>> finite_number(3), finite_number(True), finite_number(10**400), finite_number(1e308 * 10)
    (3.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class Fields:
    """Typed access to one JSON object, every failure one line: FILE: field 'a.b' must be ...
    (a ValueError; the readers of each output turn it into theirs)."""

    def __init__(self, where: str, prefix: str, data: Any) -> None:
        self.where = where
        self.prefix = prefix
        if not isinstance(data, dict):
            what = f"field {prefix!r} must be" if prefix else "must hold"
            raise ValueError(f"{where}: {what} an object, not {json_type(data)}")
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, must: str) -> ValueError:
        field = f"field {self.name(key)!r}"
        if key not in self.data:
            return ValueError(f"{self.where}: {field} is missing (it must be {must})")
        got = json_type(self.data[key])
        return ValueError(f"{self.where}: {field} must be {must}, not {got}")

    def _get(self, key: str, required: bool) -> Any:
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False, empty: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (not empty and not value.strip()):
            must = "a string" if empty else "a non-empty string"
            raise self.fail(key, must if required else f"{must} or null")
        return value

    def integer(self, key: str, *, required: bool = False, low: int = 0) -> int | None:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(key, f"an integer >= {low}" + ("" if required else " or null"))
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def number(self, key: str, low: float, high: float) -> float | None:
        """A finite number from ``low`` to ``high``, or None (null or absent)."""
        value = self.data.get(key)
        if value is None:
            return None
        number = finite_number(value)
        if number is None or not low <= number <= high:
            raise self.fail(key, f"a number from {low:g} to {high:g} or null")
        return number

    def interval(self, key: str) -> list[float] | None:
        """A bootstrap interval: two finite numbers, low <= high, or None (null or absent)."""
        value = self.data.get(key)
        if value is None:
            return None
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(finite_number(end) is not None for end in value)
            and value[0] <= value[1]
        ):
            raise ValueError(
                f"{self.where}: field {self.name(key)!r} must be an interval [low, high] of two "
                f"finite numbers or null, not {_shown(value)}"
            )
        return [float(value[0]), float(value[1])]

    def path(self, key: str) -> str:
        value = self.string(key, required=True)
        assert value is not None
        _check_relative(value, f"{self.where}: field {self.name(key)!r}")
        return value


def check_format(run: Any, where: str) -> Fields:
    """The checks every output of this package shares: ``run`` is an object, its ``format`` is
    this package's and its ``format_version`` one this version reads (ValueError, one line
    naming ``where``, otherwise). Returns its :class:`Fields`.

    >>> check_format({"format": FORMAT, "format_version": 99}, "run.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: run.json: format_version 99 is newer than this rarity-score reads (2); ...
    """
    top = Fields(where, "", run)
    if top.string("format", required=True) != FORMAT:
        raise ValueError(
            f"{where}: field 'format' must be {FORMAT!r} (got {_shown(run.get('format'))}): "
            "not an output of rarity-score"
        )
    version = top.integer("format_version", required=True, low=1)
    assert version is not None
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where}: format_version {version} is newer than this rarity-score reads "
            f"({FORMAT_VERSION}); upgrade rarity-score"
        )
    return top


def validate_run(run: Any, where: str) -> dict[str, Any]:
    """Check the parsed ``run.json`` ``run`` and return it normalised (a copy).

    Required: ``format`` (this package's), ``format_version`` (an integer this version reads),
    ``mode`` (compare, score or datasets), ``k`` (an integer >= 1), ``sets`` (a non-empty list of
    objects each with a non-empty ``name`` and string ``slug``, ``table``, ``arrays``), and ``real``
    an object in compare and score modes. Optional keys have their types checked and are filled
    in (``None``, ``False`` or ``0``) when absent, so a reader can index them. ``where`` (the file)
    starts every message.
    """
    top = check_format(run, where)
    record = dict(run)
    mode = top.string("mode", required=True)
    if mode not in METHODS:
        raise top.fail("mode", " or ".join(repr(m) for m in METHODS))
    top.integer("k", required=True, low=1)
    record["method"] = top.string("method") or METHODS[mode]
    for key in ("package_version", "created", "reference_loo"):
        record[key] = top.string(key)
    if record["reference_loo"] is not None:
        top.path("reference_loo")
    command = run.get("command")
    if not (
        command is None
        or isinstance(command, str)
        or (isinstance(command, list) and all(isinstance(part, str) for part in command))
    ):
        raise top.fail("command", "a list of strings")
    record["command"] = command
    if run.get("notes") is not None and not isinstance(run["notes"], dict):
        raise top.fail("notes", "an object")

    extractor = run.get("extractor")
    if extractor is not None:
        fields = Fields(where, "extractor", extractor)
        for key in ("name", "preprocessing", "weights_id"):
            fields.string(key)
        fields.integer("dim", low=1)
    record["extractor"] = extractor
    dim = top.integer("dim", low=1)
    if dim is None and isinstance(extractor, dict):
        dim = extractor.get("dim")
    record["dim"] = dim

    sets = run.get("sets")
    if not isinstance(sets, list) or not sets:
        raise top.fail("sets", "a non-empty list of objects")
    record["sets"] = [_input(where, f"sets[{i}]", entry, True) for i, entry in enumerate(sets)]
    real = run.get("real")
    if mode == "datasets":
        if real is not None:
            raise top.fail("real", "null in datasets mode (each dataset is its own reference)")
        record["real"] = None
    else:
        if real is None:
            raise top.fail("real", f"an object in {mode} mode")
        record["real"] = _input(where, "real", real, False)
    # Derivable from the real set's entry, so no longer written; an older record's value wins.
    derived = bool(record["real"] and record["real"]["has_images"])
    record["real_has_images"] = top.boolean("real_has_images", derived)
    return record


def _input(where: str, prefix: str, entry: Any, is_set: bool) -> dict[str, Any]:
    """One input of ``run.json`` (a set, or the real set), checked and normalised."""
    fields = Fields(where, prefix, entry)
    out = dict(entry)
    out["name"] = fields.string("name", required=is_set, empty=False) or "real"
    if is_set:
        fields.string("slug", required=True)
        fields.path("table")
        fields.path("arrays")
    for key in ("source", "kind", "fingerprint", "images_fingerprint"):
        out[key] = fields.string(key)
    out["n"] = fields.integer("n")
    # --subsample: the size before a random subset of the input was scored (null: scored whole).
    out["subsampled_from"] = fields.integer("subsampled_from", low=1)
    out["n_skipped"] = fields.integer("n_skipped") or 0
    # Not recorded (an older or hand-written record): images when the kind is one of images.
    out["has_images"] = fields.boolean("has_images", out["kind"] in IMAGE_KINDS)
    skipped = entry.get("skipped")
    if skipped is not None:
        if not isinstance(skipped, list):
            raise fields.fail("skipped", "a list of objects")
        for i, item in enumerate(skipped):
            one = Fields(where, f"{prefix}.skipped[{i}]", item)
            one.string("name", required=True)
            one.string("reason")
    out["skipped"] = skipped or []
    return out


def validate_summary(
    rows: Any,
    where: str,
    names: Sequence[str] | None = None,
    *,
    numbers: Sequence[str] | None = None,
    counts: Sequence[str] = (),
    first_line: int | None = None,
) -> list[dict[str, Any]]:
    """Check the rows of ``summary.json``: a list of objects, each with a string ``name`` and a
    number or null in every numeric column (``numbers``, the per-set values the reader knows;
    None: every other key), a whole number >= 0 or null in each of ``counts``; with ``names``
    (the sets of ``run.json``, in order) the rows must be those sets. ``first_line``: the rows
    come from a CSV file (``summary.csv``), row 0 on that line, which the errors name. Returns
    ``rows``; ValueError (one line naming ``where``) otherwise.

    >>> validate_summary([{"name": "a", "n": 2.5}], "summary.csv", counts=["n"], first_line=2)
    Traceback (most recent call last):
    ...
    ValueError: summary.csv: line 2, column 'n' must be a whole number >= 0 (or empty), not 2.5
    """
    if not isinstance(rows, list):
        raise ValueError(f"{where}: must hold a list of rows, not {json_type(rows)}")
    for i, row in enumerate(rows):
        fields = Fields(where, f"[{i}]", row)
        fields.string("name", required=True)
        for key in row:
            if isinstance(key, str) and key.endswith("_ci"):  # --bootstrap: [low, high] or null
                fields.interval(key)
        for key in [key for key in row if key != "name"] if numbers is None else numbers:
            value = row.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                must = "a number"
            elif finite_number(value) is None and not (key in counts and isinstance(value, int)):
                must = "a finite number"  # inf, nan, or an integer beyond a float (10**400)
            elif key in counts and (value < 0 or value != int(value)):
                must = "a whole number >= 0"
            else:
                continue
            if first_line is not None:
                raise ValueError(
                    f"{where}: line {first_line + i}, column {key!r} must be {must} (or empty), "
                    f"not {_shown(value)}"
                )
            if must == "a whole number >= 0":
                raise ValueError(
                    f"{where}: field {fields.name(key)!r} must be {must} or null, not {value!r}"
                )
            raise fields.fail(key, f"{must} or null")
    if names is not None:
        found = [row["name"] for row in rows]
        if found != list(names):
            raise ValueError(
                f"{where}: rows {_shown(found)} do not match the sets of run.json "
                f"{_shown(list(names))}"
            )
    return rows
