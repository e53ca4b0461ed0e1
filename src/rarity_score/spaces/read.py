"""The reader of a spaces output (the layout: :mod:`rarity_score.spaces.output`).

:func:`load_spaces` treats the folder as untrusted input: every field and array is checked
(types, shapes, dtypes as written, rarities >= 0 or NaN, flags where the rarity is finite,
percentiles those of the rarities' ranks, unique names where samples were matched by name),
every path stays inside the folder, and anything wrong is one line naming the file
(:class:`~rarity_score.results_dir.ResultsError`). The percentiles are checked with scipy, so
reading needs the ``spaces`` extra, as writing does.

A space's results directory is followed for the names of its real samples (the report's
nearest real thumbnails): one inside the output (a relative path, part of the output) always,
one elsewhere (an absolute path: a directory compared in place) only while its ``run.json``
records the same real set as the spaces output does (the same ``images_fingerprint`` and
features ``fingerprint``, one of them at least recorded); otherwise that space's
``real_names`` is None.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score.io.features import open_npz, read_npz_array
from rarity_score.io.names import one_line, printable, shorten, slugs
from rarity_score.io.run_record import (
    FORMAT,
    METHODS,
    SPACES_MODE,
    Fields,
    check_format,
    inside,
    json_type,
    read_json,
)
from rarity_score.results_dir.read import ResultsError, load_results
from rarity_score.spaces.agreement import percentiles
from rarity_score.spaces.text import COUNTS

__all__ = ["SpaceRecord", "SpacesResults", "SpacesSet", "load_spaces"]

logger = logging.getLogger(__name__)

_MATCHED = ("name", "row")
_CORRELATIONS = ("spearman", "kendall", "kappa")  # in [-1, 1]
_JACCARDS = ("jaccard_rarest", "jaccard_common")  # in [0, 1]
#: How far a recorded percentile may be from the one its rarities' ranks give (rounding only).
_PERCENTILE_TOLERANCE = 1e-9


@dataclass
class SpaceRecord:
    """A space of a spaces output, as ``run.json`` records it.

    ``results``: the path of its results directory as recorded (relative: inside the output);
    ``real_origin``: ``(source, kind, images_fingerprint)`` of its real set (None: not
    recorded); ``real_names``: the names of its real rows, read from its results directory when
    that is reachable, readable and (outside the output) still records the same real images
    (None otherwise): ``nearest_real_index`` counts these rows.
    """

    name: str
    slug: str
    results: str
    extractor: str | None
    preprocessing: str | None
    weights_id: str | None
    dim: int | None
    k: int | None
    n_real: int | None
    real_origin: tuple[str | None, str | None, str | None] | None
    real_names: list[str] | None = None
    #: The results directory, resolved (None: the recorded path leads nowhere readable).
    results_dir: Path | None = None
    #: The fingerprint of its real features (``real.fingerprint``; None: not recorded).
    real_fingerprint: str | None = None
    #: The size of its real set before the random subset scored (None: whole, or not recorded).
    n_real_subsampled_from: int | None = None
    #: ``{"resamples", "level"}`` of the bootstrap intervals its results directory holds.
    bootstrap: dict[str, Any] | None = None


@dataclass
class SpacesSet:
    """One set of a spaces output: its ``run.json`` entry and its arrays, (n, spaces), columns
    in the order of :attr:`SpacesResults.spaces`."""

    name: str
    slug: str
    n: int
    names: list[str]
    matched_by: str
    source: str | None
    kind: str | None
    images_fingerprint: str | None
    rarity: np.ndarray = field(repr=False)
    percentile: np.ndarray = field(repr=False)
    in_manifold: np.ndarray = field(repr=False)
    nearest_real_index: np.ndarray = field(repr=False)
    #: The file the arrays were read from.
    source_file: Path | None = None
    #: Whether the spaces' directories recorded the same images of the set (None: not known).
    same_images: bool | None = None
    #: The size of the set before the random subset scored (None: scored whole).
    subsampled_from: int | None = None


@dataclass
class SpacesResults:
    """A spaces output as read: ``run.json``, the spaces, the sets, the summary rows."""

    root: Path
    run: dict[str, Any]
    spaces: list[SpaceRecord]
    sets: list[SpacesSet]
    summary: list[dict[str, Any]]

    @property
    def space_names(self) -> list[str]:
        return [space.name for space in self.spaces]

    @property
    def warnings(self) -> list[str]:
        """What the output records as warnings (``run.json["warnings"]``: real sets of different
        sizes, different k), one line each; none in an output of an earlier version."""
        return [printable(text) for text in self.run.get("warnings") or []]

    def rows_of(self, set_name: str) -> list[dict[str, Any]]:
        """The summary rows of one set, in pair order."""
        return [row for row in self.summary if row["set"] == set_name]


def _where(path: Path) -> str:
    return printable(str(path))


def _text(fields: Fields, key: str, *, required: bool = False) -> str | None:
    """A string (non-empty when ``required``), or None when absent or null and not required."""
    return fields.string(key, required=required, empty=not required)


def _flag(fields: Fields, key: str) -> bool | None:
    value = fields.data.get(key)
    if value is not None and not isinstance(value, bool):
        raise fields.fail(key, "true, false or null")
    return value


def _read_run(root: Path) -> dict[str, Any]:
    path = inside(root, "run.json", _where(root))
    try:
        run = read_json(path)
    except FileNotFoundError as error:
        raise ResultsError(
            f"{_where(root)} is not an output of rarity spaces (no run.json in it)"
        ) from error
    where = _where(path)
    mode = run.get("mode") if isinstance(run, dict) else None
    if isinstance(run, dict) and run.get("format") == FORMAT and mode in METHODS:
        raise ResultsError(
            f"{_where(root)} is a results directory of rarity {mode}, not an output of "
            "rarity spaces; read it with rarity_score.load_results"
        )
    top = check_format(run, where)
    if mode != SPACES_MODE:
        raise top.fail("mode", repr(SPACES_MODE))
    top.integer("k", low=1)
    fraction = top.number("fraction", 0.0, 1.0)
    if fraction == 0.0:
        raise top.fail("fraction", "a number above 0 and at most 1")
    for key in ("method", "package_version", "created"):
        top.string(key)
    _flag(top, "real_same_images")
    warnings = run.get("warnings")
    if not (
        warnings is None
        or (isinstance(warnings, list) and all(isinstance(text, str) for text in warnings))
    ):
        raise top.fail("warnings", "a list of strings or null")
    command = run.get("command")
    if not (
        command is None
        or (isinstance(command, list) and all(isinstance(part, str) for part in command))
    ):
        raise top.fail("command", "a list of strings or null")
    return dict(run)


def _read_spaces(root: Path, run: dict[str, Any], where: str) -> list[SpaceRecord]:
    entries = run.get("spaces")
    if not isinstance(entries, list) or len(entries) < 2:
        raise Fields(where, "", run).fail("spaces", "a list of at least two objects")
    out: list[SpaceRecord] = []
    recorded = []
    for i, entry in enumerate(entries):
        fields = Fields(where, f"spaces[{i}]", entry)
        name = _text(fields, "name", required=True)
        assert name is not None
        if printable(name) in [space.name for space in out]:
            raise ResultsError(f"{where}: two spaces are named {shorten(name, 60)!r}")
        recorded.append(_text(fields, "slug") or printable(name))
        results = _text(fields, "results", required=True)
        assert results is not None
        real = entry.get("real")
        origin = None
        features_print = None
        if real is not None:
            real_fields = Fields(where, f"spaces[{i}].real", real)
            origin = (
                _text(real_fields, "source"),
                _text(real_fields, "kind"),
                _text(real_fields, "images_fingerprint"),
            )
            features_print = _text(real_fields, "fingerprint")
        out.append(
            SpaceRecord(
                name=printable(name),
                slug="",
                results=results,
                extractor=_text(fields, "extractor"),
                preprocessing=_text(fields, "preprocessing"),
                weights_id=_text(fields, "weights_id"),
                dim=fields.integer("dim", low=1),
                k=fields.integer("k", low=1),
                n_real=fields.integer("n_real"),
                real_origin=origin,
                results_dir=_results_dir(root, results, f"{where}: field 'spaces[{i}].results'"),
                real_fingerprint=features_print,
                n_real_subsampled_from=fields.integer("n_real_subsampled_from", low=1),
                bootstrap=_bootstrap(Fields(where, f"spaces[{i}]", entry)),
            )
        )
    # Slugs name files of the report: file-safe and distinct whatever run.json says.
    for space, slug in zip(out, slugs(recorded), strict=True):
        space.slug = slug
    for space in out:
        space.real_names = _real_names(space)
    return out


def _bootstrap(fields: Fields) -> dict[str, Any] | None:
    """A space's ``bootstrap`` entry: null, or ``{"resamples": int >= 1, "level": (0, 1)}``."""
    value = fields.data.get("bootstrap")
    if value is None:
        return None
    resamples = value.get("resamples") if isinstance(value, dict) else None
    level = value.get("level") if isinstance(value, dict) else None
    if (
        isinstance(resamples, bool)
        or not isinstance(resamples, int)
        or resamples < 1
        or isinstance(level, bool)
        or not isinstance(level, (int, float))
        or not 0 < level < 1
    ):
        raise fields.fail("bootstrap", "null or {resamples: an integer >= 1, level: in (0, 1)}")
    return {"resamples": resamples, "level": float(level)}


def _results_dir(root: Path, recorded: str, where: str) -> Path | None:
    """The recorded results directory of a space: a relative path stays inside the output
    (refused otherwise); an absolute one is taken as it is (a directory compared in place)."""
    if os.path.isabs(recorded):
        path = Path(recorded)
    else:
        try:
            path = inside(root, recorded, where)
        except ValueError as error:
            raise ResultsError(one_line(error)) from error
    return path if path.is_dir() else None


def _real_names(space: SpaceRecord) -> list[str] | None:
    """The space's real names from its results directory; None when it cannot be read, or
    (one outside the output) does not record the real images the spaces output records."""
    if space.results_dir is None:
        return None
    try:
        results = load_results(space.results_dir)
    except (OSError, ValueError, MemoryError) as error:
        logger.info("space %r: no names of its real set (%s)", space.name, one_line(error, 200))
        return None
    if os.path.isabs(space.results):
        # A directory elsewhere may have been replaced since: followed only while it records
        # the real set this output records (its images and its features, as far as recorded).
        recorded = (space.real_origin[2] if space.real_origin else None, space.real_fingerprint)
        real = results.run.get("real") or {}
        found = (real.get("images_fingerprint"), real.get("fingerprint"))
        if recorded == (None, None) or found != recorded:
            logger.info(
                "space %r: no names of its real set (%s does not record the real images this "
                "output records)",
                space.name,
                printable(str(space.results_dir)),
            )
            return None
    names = results.real_names
    if names is None or (space.n_real is not None and len(names) > space.n_real):
        return None
    return names


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open_npz(path) as data:
            return {key: read_npz_array(data, key, path, numeric=False) for key in data.files}
    except FileNotFoundError as error:
        raise ResultsError(f"{_where(path)} is missing: the spaces output is incomplete") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ResultsError(
            f"{_where(path)}: cannot read the arrays ({one_line(error, 200)})"
        ) from error


#: The arrays of a set's file: the dtype kind ("U": text of any length) or exact dtype the
#: writer writes, and the number of dimensions (2: n x spaces).
_ARRAYS: dict[str, tuple[str, int]] = {
    "names": ("U", 1),
    "spaces": ("U", 1),
    "rarity": ("float64", 2),
    "percentile": ("float64", 2),
    "in_manifold": ("bool", 2),
    "nearest_real_index": ("int64", 2),
}

_DTYPE_WORDS = {
    "U": "text",
    "float64": "float64",
    "bool": "true/false values",
    "int64": "int64",
}


def _dtype_ok(values: np.ndarray, expected: str) -> bool:
    if expected == "U":
        return values.dtype.kind == "U"
    return values.dtype == np.dtype(expected)


def _read_set(
    root: Path, entry: Any, where: str, prefix: str, slug: str, spaces: Sequence[SpaceRecord]
) -> SpacesSet:
    fields = Fields(where, prefix, entry)
    name = _text(fields, "name", required=True)
    assert name is not None
    n = fields.integer("n", required=True)
    assert n is not None
    matched_by = _text(fields, "matched_by", required=True)
    if matched_by not in _MATCHED:
        raise fields.fail("matched_by", " or ".join(repr(m) for m in _MATCHED))
    same_images = _flag(fields, "same_images")
    path = inside(root, f"sets/{slug}.npz", f"{where}: field '{prefix}.slug'")
    arrays = _read_npz(path)
    shown = _where(path)
    size = len(spaces)
    for key, (expected, ndim) in _ARRAYS.items():
        values = arrays.get(key)
        if values is None:
            raise ResultsError(f"{shown}: no {key!r} array")
        shape = (n,) if ndim == 1 else (n, size)
        if key == "spaces":
            shape = (size,)
        if not _dtype_ok(values, expected) or values.shape != shape:
            raise ResultsError(
                f"{shown}: array {key!r} must be of shape {shape} ({_DTYPE_WORDS[expected]}), "
                f"not {values.dtype} of shape {values.shape}"
            )
    listed = [printable(str(value)) for value in arrays["spaces"].tolist()]
    if listed != [space.name for space in spaces]:
        raise ResultsError(
            f"{shown}: its spaces {shorten(repr(listed), 80)} are not those of run.json"
        )
    names = [printable(str(value)) for value in arrays["names"].tolist()]
    if matched_by == "name" and len(set(names)) != len(names):
        raise ResultsError(
            f"{shown}: the samples were matched by name, but two of them share a name"
        )
    rarity, percentile = arrays["rarity"], arrays["percentile"]
    in_manifold, nearest = arrays["in_manifold"], arrays["nearest_real_index"]
    _check_scores(shown, rarity, percentile, in_manifold)
    for column, space in enumerate(spaces):
        values = nearest[:, column]
        if values.size and (
            values.min() < -1 or (space.n_real is not None and values.max() >= space.n_real)
        ):
            bound = f"below {space.n_real}" if space.n_real is not None else "a row"
            raise ResultsError(
                f"{shown}: nearest_real_index of space {shorten(space.name, 60)!r} must be -1 "
                f"or {bound} (the rows of its real set)"
            )
    return SpacesSet(
        name=printable(name),
        slug=slug,
        n=n,
        names=names,
        matched_by=matched_by,
        source=_text(fields, "source"),
        kind=_text(fields, "kind"),
        images_fingerprint=_text(fields, "images_fingerprint"),
        rarity=rarity,
        percentile=percentile,
        in_manifold=in_manifold,
        nearest_real_index=nearest,
        source_file=path,
        same_images=same_images,
        subsampled_from=fields.integer("subsampled_from", low=1),
    )


def _check_scores(
    shown: str, rarity: np.ndarray, percentile: np.ndarray, in_manifold: np.ndarray
) -> None:
    """Rarities finite and >= 0 exactly where the flags say in, NaN elsewhere; percentiles
    those of the rarities' ranks in each space."""
    if np.isinf(rarity).any() or not np.array_equal(in_manifold, np.isfinite(rarity)):
        raise ResultsError(
            f"{shown}: in_manifold must be exactly where rarity is finite (NaN out of the manifold)"
        )
    if (rarity[in_manifold] < 0).any():
        raise ResultsError(f"{shown}: rarity must be >= 0 (a radius), or NaN out of the manifold")
    if not np.array_equal(np.isfinite(percentile), in_manifold) or (
        in_manifold.any()
        and not ((percentile[in_manifold] >= 0).all() and (percentile[in_manifold] <= 100).all())
    ):
        raise ResultsError(
            f"{shown}: percentile must be from 0 to 100 in the manifold and NaN out of it"
        )
    expected = percentiles(rarity)
    if in_manifold.any() and not np.allclose(
        percentile[in_manifold], expected[in_manifold], rtol=0.0, atol=_PERCENTILE_TOLERANCE
    ):
        raise ResultsError(
            f"{shown}: percentile must be each sample's place by rarity within its space "
            "(100 * (rank - 1) / (n_in - 1)), which it is not"
        )


def _read_summary(
    root: Path, sets: Sequence[SpacesSet], spaces: Sequence[SpaceRecord]
) -> list[dict[str, Any]]:
    path = inside(root, "summary.json", _where(root))
    where = _where(path)
    try:
        rows = read_json(path)
    except FileNotFoundError as error:
        raise ResultsError(f"{where} is missing: the spaces output is incomplete") from error
    if not isinstance(rows, list):
        raise ResultsError(f"{where}: must hold a list of rows, not {json_type(rows)}")
    names = [space.name for space in spaces]
    expected = [
        (item.name, names[a], names[b])
        for item in sets
        for a in range(len(names))
        for b in range(a + 1, len(names))
    ]
    out = []
    for i, row in enumerate(rows):
        fields = Fields(where, f"[{i}]", row)
        clean: dict[str, Any] = {}
        for key in ("set", "space_a", "space_b"):
            value = _text(fields, key, required=True)
            assert value is not None
            clean[key] = printable(value)
        for key in COUNTS:
            clean[key] = fields.integer(key, required=True)
        for key in _CORRELATIONS:
            clean[key] = fields.number(key, -1.0, 1.0)
        for key in _JACCARDS:
            clean[key] = fields.number(key, 0.0, 1.0)
        counts = clean["in_in"] + clean["in_out"] + clean["out_in"] + clean["out_out"]
        if counts != clean["n"] or clean["in_in"] != clean["n_in_both"]:
            raise ResultsError(
                f"{where}: row {i}: the 2 x 2 counts must add up to n, and in_in be n_in_both"
            )
        out.append(clean)
    found = [(row["set"], row["space_a"], row["space_b"]) for row in out]
    if found != expected:
        raise ResultsError(
            f"{where}: the rows must be one per set and pair of spaces of run.json, in order "
            f"(expected {shorten(repr(expected), 80)}, found {shorten(repr(found), 80)})"
        )
    for row in out:
        item = next(item for item in sets if item.name == row["set"])
        if row["n"] != item.n:
            raise ResultsError(
                f"{where}: set {shorten(item.name, 60)!r} has n = {row['n']} but its arrays hold "
                f"{item.n} samples"
            )
    return out


def load_spaces(path: str | os.PathLike[str]) -> SpacesResults:
    """Read an output of ``rarity spaces``: ``run.json``, every set's arrays, the summary rows
    (nothing is recomputed). Raises :class:`~rarity_score.results_dir.ResultsError` with one
    line naming the file (and the field) when the folder is not one or something in it is
    damaged; an absent or unreadable per-space results directory only leaves that space's
    ``real_names`` None.

    >>> import numpy as np, tempfile, pathlib
    >>> from rarity_score.compare import compare
    >>> from rarity_score.results_dir import load_results
    >>> from rarity_score.spaces.match import align
    >>> from rarity_score.spaces.write import space_record, write_spaces
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(60, 3)), rng.normal(size=(30, 3))
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a = load_results(compare(real, {"s": fake}, folder / "a", report=False).path)
    >>> b = load_results(compare(real ** 3, {"s": fake ** 3}, folder / "b", report=False).path)
    >>> records = [space_record("A", a, slug="A"), space_record("B", b, slug="B")]
    >>> out = write_spaces(folder / "out", align([("A", a), ("B", b)]), records, k=3).path
    >>> loaded = load_spaces(out)
    >>> loaded.space_names, [s.name for s in loaded.sets], loaded.sets[0].rarity.shape
    (['A', 'B'], ['s'], (30, 2))
    """
    root = Path(path)
    if not root.is_dir():
        raise ResultsError(f"not an output of rarity spaces: {_where(root)} is not a folder")
    try:
        run = _read_run(root)
        where = _where(root / "run.json")
        spaces = _read_spaces(root, run, where)
        entries = run.get("sets")
        if not isinstance(entries, list) or not entries:
            raise Fields(where, "", run).fail("sets", "a non-empty list of objects")
        recorded = []
        for i, entry in enumerate(entries):
            fields = Fields(where, f"sets[{i}]", entry)
            recorded.append(_text(fields, "slug") or printable(_text(fields, "name") or "set"))
        sets = [
            _read_set(root, entry, where, f"sets[{i}]", slug, spaces)
            for i, (entry, slug) in enumerate(zip(entries, slugs(recorded), strict=True))
        ]
        if len({item.name for item in sets}) != len(sets):
            raise ResultsError(f"{where}: two sets have the same name")
        summary = _read_summary(root, sets, spaces)
    except ResultsError:
        raise
    except ValueError as error:  # a field of the wrong type, a path leading out: one line
        raise ResultsError(one_line(error)) from error
    return SpacesResults(root=root, run=run, spaces=spaces, sets=sets, summary=summary)
