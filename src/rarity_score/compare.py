"""Compare several generated sets against one real set, or several datasets with each other, and
write a self-describing results directory (``docs/dev/report-contract.md``).

Two methods
    * :func:`compare`: the real manifold is built **once** and every generated set is scored
      against it (one sweep per set). The real set's own leave-one-out rarity is saved beside the
      scores as the reference curve of the histograms (``reference_loo.npz``).
    * :func:`compare_datasets`: the paper's dataset comparison. Each dataset is scored against
      **its own** manifold with its own sphere left out (leave-one-out,
      :meth:`~rarity_score.manifold.RealManifold.leave_one_out`), all in one feature space; there is
      no real reference set, so precision, recall, density and coverage do not apply.

Scores are distances in the feature space: they are comparable only within one feature extractor,
one real reference set and one k. Every results directory records all three in ``run.json``.

The results directory
    ``run.json``, ``summary.csv`` / ``.json`` / ``.md`` (one row per set), ``sets/<slug>.csv`` and
    ``sets/<slug>.npz`` (per sample, with the names of the samples, of the sphere that gave the
    score and of the nearest real sample), ``reference_loo.npz`` (compare and score modes), then
    the report (``report/index.html``, ``histogram.png``) when :mod:`rarity_score.report` is
    installed. A run writes everything into a temporary sibling folder and renames it into place
    only when complete: a results directory is never half-written.

Replacing an earlier results directory
    ``run.json["files"]`` lists every file the run wrote, report included (relative path ->
    SHA-256 and size; :mod:`rarity_score.io.publish`). A folder at the output path is replaced
    only when it is empty or holds exactly such files, unchanged (checked before any work and
    again right before the swap); a folder with anything else in it (a note, a figure, an edited
    table, a ``run.json`` that merely claims the format, a results directory of a version that
    did not list its files) is refused, and nothing in it is deleted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score import defaults
from rarity_score.features.pipeline import ExtractionOptions
from rarity_score.io import publish
from rarity_score.io.atomic import (
    StorageFullError,
    atomic_write_bytes,
    atomic_write_text,
    is_machine_failure,
)
from rarity_score.io.features import features_fingerprint
from rarity_score.io.names import csv_cell, printable, shorten
from rarity_score.io.run_record import (
    FORMAT,
    FORMAT_VERSION,
    IMAGE_KINDS,
    METHODS,
    SUMMARY_COLUMNS,
)
from rarity_score.manifold import RealManifold
from rarity_score.results import Evaluation

if TYPE_CHECKING:
    from rarity_score.features.info import FeatureExtractor
    from rarity_score.features.pipeline import CacheDir, FeatureSet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METHODS",
    "SUMMARY_COLUMNS",
    "InputSet",
    "build_results_report",
    "check_output_dir",
    "choose_extractor",
    "compare",
    "compare_datasets",
    "format_table",
    "is_results_dir",
    "read_run",
    "read_summary",
    "write_results",
]

logger = logging.getLogger(__name__)


_NOTES: dict[str, str] = {
    "rarity": (
        "a sample outside every k-NN sphere of its reference has no rarity score (NaN in .npz, "
        "empty in CSV, null in JSON) and is counted as out of the manifold; rarity statistics "
        "are over in-manifold samples only"
    ),
    "comparability": (
        "scores are distances in the feature space: comparable only within one feature "
        "extractor, one real reference set and one k"
    ),
    "leave-one-out": (
        "each sample of a set is scored against the k-NN spheres of the other samples of the "
        "same set (its own sphere left out; the other samples' radii are those of the full set)"
    ),
}


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputSet:
    """One named input of a run: its features and where they came from.

    Attributes:
        name: the set's name as the user gave it (``"psi=0.7"``).
        source: the input as a string: an absolute path for files and folders (``file.npz:key``
            keeps its key), a description for arrays.
        kind: ``"folder"``, ``"archive"``, ``"list"``, ``"image"`` (one image file),
            ``"paths"`` (a sequence of image paths), ``"array"`` (images in memory) or
            ``"features"`` (a feature file or array).
        features: the :class:`~rarity_score.features.pipeline.FeatureSet` (rows, names, skipped).
    """

    name: str
    source: str
    kind: str
    features: FeatureSet = field(repr=False)

    @classmethod
    def describe(cls, name: str, given: Any, features: FeatureSet) -> InputSet:
        """The record of ``features``, loaded from ``given`` (anything ``load_or_extract`` reads).

        >>> import numpy as np
        >>> from rarity_score.features.pipeline import load_or_extract
        >>> s = InputSet.describe("a", np.zeros((2, 3)), load_or_extract(np.zeros((2, 3))))
        >>> s.kind, s.has_images, s.source
        ('features', False, 'ndarray (2, 3)')
        """
        return cls(
            name=name, source=_source_text(given, features), kind=_kind(given), features=features
        )

    @property
    def has_images(self) -> bool:
        """Whether the per-sample names are images that ``open_images(source)`` opens again."""
        return self.kind in IMAGE_KINDS

    def describe_for_run(self) -> dict[str, Any]:
        """The set's entry in ``run.json`` (without the per-set file names)."""
        features = self.features
        # Names and paths may hold bytes that are not UTF-8 (file names): written escaped.
        return {
            "name": printable(self.name),
            "source": printable(self.source),
            "kind": self.kind,
            "n": len(features),
            "n_skipped": len(features.skipped),
            "skipped": [
                {"name": printable(str(n)), "reason": printable(str(r))}
                for n, r in features.skipped
            ],
            "has_images": self.has_images,
            "fingerprint": features_fingerprint(np.asarray(features.features)),
            # What the report checks before it opens any image of this source (io.run_record).
            "images_fingerprint": features.images_fingerprint or None,
        }


@dataclass(frozen=True)
class _Engine:
    """How the sweep runs (results never depend on it)."""

    backend: str
    device: str | None
    memory_budget: int

    def manifold(self, features: Any, k: int, label: str) -> RealManifold:
        return RealManifold(
            features,
            k,
            backend=self.backend,
            device=self.device,
            memory_budget=self.memory_budget,
            label=label,
        )


def _kind(given: Any) -> str:
    from rarity_score.features.pipeline import FeatureSet
    from rarity_score.io.images import (
        ARCHIVE_EXTENSIONS,
        IMAGE_EXTENSIONS,
        ImageCollection,
        is_feature_file,
    )

    if isinstance(given, FeatureSet):
        return "features"
    if isinstance(given, ImageCollection):
        return "image" if given.kind == "paths" and len(given) == 1 else given.kind
    if isinstance(given, (str, os.PathLike)):
        if is_feature_file(given):
            return "features"
        path = Path(given)
        if path.is_dir():
            return "folder"
        lower = path.name.lower()
        if lower.endswith(ARCHIVE_EXTENSIONS):
            return "archive"
        if lower.endswith(".txt"):
            return "list"
        if lower.endswith(IMAGE_EXTENSIONS):
            return "image"
        return "paths"
    shape = getattr(given, "shape", None)
    if shape is not None:
        return "features" if len(shape) == 2 else "array"
    return "paths"


def _source_text(given: Any, features: FeatureSet) -> str:
    if isinstance(given, (str, os.PathLike)):
        return os.path.abspath(os.fspath(given))
    from rarity_score.io.images import ImageCollection

    if isinstance(given, ImageCollection) and given.kind in ("folder", "archive", "list"):
        return os.path.abspath(given.source)
    return features.source or type(given).__name__


def _load_inputs(
    entries: Sequence[tuple[str, str, Any]], extraction: ExtractionOptions
) -> list[InputSet]:
    """Load ``(label, name, source)`` entries: feature inputs first, then images with the one
    extractor they all share (the given one, else the one recorded in the feature files, else the
    default). Errors name the set."""
    from rarity_score.features.pipeline import FeatureSet, load_or_extract
    from rarity_score.features.space import check_extractor_fits
    from rarity_score.io.images import ImageCollection, is_feature_file, open_images

    def is_features(source: Any) -> bool:
        shape = getattr(source, "shape", None)
        return (
            isinstance(source, FeatureSet)
            or is_feature_file(source)
            or (shape is not None and hasattr(source, "dtype") and len(shape) == 2)
        )

    loaded: dict[int, InputSet] = {}
    for i, (label, name, source) in enumerate(entries):
        if is_features(source):
            with _naming(label):
                loaded[i] = InputSet.describe(name, source, load_or_extract(source))
    recorded = {
        entries[i][0]: s.features.extractor for i, s in loaded.items() if s.features.extractor
    }
    extractor = choose_extractor(extraction.extractor, recorded)
    # Every image input is listed (a missing or empty one refused) and the extractor checked
    # against the feature inputs before the first image is extracted.
    images: dict[int, ImageCollection] = {}
    for i, (label, _, source) in enumerate(entries):
        if i not in loaded:
            with _naming(label):
                images[i] = open_images(source)
    check_extractor_fits(
        [(entries[i][0], s.features) for i, s in loaded.items()],
        extractor,
        [entries[i][0] for i in images],
    )
    for i, collection in images.items():
        label, name, source = entries[i]
        with _naming(label), contextlib.closing(collection):
            features = load_or_extract(collection, replace(extraction, extractor=extractor))
            loaded[i] = InputSet.describe(name, source, features)
    sets = [loaded[i] for i in range(len(entries))]
    _check_one_space([(entries[i][0], s) for i, s in enumerate(sets)])
    return sets


@contextlib.contextmanager
def _naming(label: str) -> Iterator[None]:
    """Prefix the message of a ValueError (bad input) with the set it concerns."""
    try:
        yield
    except ValueError as error:
        if str(error).startswith(label):
            raise
        raise ValueError(f"{label}: {error}") from error


def choose_extractor(
    given: str | FeatureExtractor | None,
    recorded: Mapping[str, str],
    *,
    asked_as: str = "the extractor",
) -> str | FeatureExtractor:
    """The extractor for image inputs: ``given``, else the one the feature inputs recorded (so
    images land in the same space), else the default. ``recorded`` maps each feature input's label
    to the extractor it records; disagreements, among them or with ``given``, are refused.
    ``asked_as`` names how ``given`` was asked for in the message (e.g. ``"--extractor"``).
    """
    wanted = given if isinstance(given, str) or given is None else given.info.name
    if wanted is not None:
        for label, name in recorded.items():
            if name != wanted:
                raise ValueError(
                    f"{label} holds {name} features, but {asked_as} {wanted} was asked for; "
                    "scores are comparable only within one feature extractor"
                )
    if len(set(recorded.values())) > 1:
        described = ", ".join(f"{label}: {name}" for label, name in recorded.items())
        raise ValueError(
            f"the feature files come from different extractors ({described}); use one "
            "feature extractor for every set"
        )
    if given is not None:
        return given
    return next(iter(recorded.values()), defaults.EXTRACTOR)


def _check_one_space(sets: Sequence[tuple[str, InputSet]]) -> None:
    """Every set non-empty and all in one feature space (the one check every command uses:
    :func:`rarity_score.features.space.check_one_space`)."""
    from rarity_score.features.space import check_one_space

    for label, s in sets:
        if len(s.features) == 0:
            raise ValueError(f"{label} ({s.source}) is empty (0 samples); give at least one sample")
    check_one_space([(f"{label} ({s.source})", s.features) for label, s in sets])


def _check_names(names: Iterable[str], what: str) -> list[str]:
    out: list[str] = []
    written: set[str] = set()  # the names as the outputs hold them (escaped, see io.names)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"every {what} needs a non-empty name, got {shorten(repr(name))}")
        if name in out or printable(name) in written:
            raise ValueError(
                f"duplicate {what} name {shorten(name)!r}: each set needs its own name"
            )
        out.append(name)
        written.add(printable(name))
    if not out:
        raise ValueError(f"give at least one {what}")
    return out


def _label(what: str, name: str) -> str:
    """How messages name a set: ``generated set 'psi=0.7'`` (a long name shortened)."""
    return f"{what} {shorten(name)!r}"


def _refuse_inputs(target: Path, inputs: Sequence[tuple[str, Any]]) -> None:
    """Refuse a results directory that is, lies in or holds one of the ``(label, source)``
    inputs (replacing it would delete the input, or the next run would read it as images)."""
    from rarity_score.io.paths import check_not_an_input

    check_not_an_input(target, inputs, "the results directory", folder=True)


def _check_k(k: int, sets: Sequence[tuple[str, InputSet]]) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    for label, s in sets:
        n = len(s.features)
        if n < k + 1:
            raise ValueError(
                f"{label} has {n} samples; k={k} needs at least k + 1 = {k + 1} to build "
                "k-NN spheres"
            )


# ---------------------------------------------------------------------- the two methods


def compare(
    real: Any,
    fakes: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    k: int = defaults.K,
    metrics: Iterable[str] | None = None,
    extractor: str | FeatureExtractor | None = None,
    device: str | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    workers: int = defaults.WORKERS,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: CacheDir = None,
    strict: bool = False,
    progress: bool = True,
    shard_size: int = defaults.SHARD_SIZE,
    input_size: int | None = None,
    backend: str = defaults.BACKEND,
    memory_budget: int = defaults.MEMORY_BUDGET,
    report: bool = True,
    command: Sequence[str] | None = None,
) -> Path:
    """Score several generated sets against one real set and write a results directory.

    The real manifold is built once; each generated set is scored against it in one sweep
    (:meth:`~rarity_score.manifold.RealManifold.evaluate`), and the real set's own leave-one-out
    rarity is saved as ``reference_loo.npz``. See the module documentation for the layout.

    Args:
        real: the real reference set: an image folder, a ``.zip`` / ``.tar`` archive, a ``.txt``
            list, a feature file (``.npy``, ``.npz[:name]``, ``.pt``), a 2-D feature array, a
            :class:`~rarity_score.features.pipeline.FeatureSet`: anything
            :func:`~rarity_score.features.pipeline.load_or_extract` accepts.
        fakes: set name -> generated set (same kinds of sources), in the order of the outputs.
        out_dir: the results directory; created, or replaced if it holds exactly an earlier
            results directory (the files its ``run.json`` lists, unchanged); any other
            non-empty folder is refused before any work, and nothing in it is deleted. It must
            not be, lie in or hold an input.
        k: neighbourhood size of the k-NN spheres.
        metrics: the metrics of :func:`~rarity_score.evaluate` to compute (None: all).
        extractor: feature extractor for image inputs (a registry name or an extractor object);
            None: the one recorded in the feature files given, else the default (the paper's).
        device: torch device; it runs the extractor (default cpu) and the sweep (unless
            ``backend="numpy"``).
        batch_size, workers, weights, cache_dir, strict, progress, shard_size, input_size: as
            for :func:`~rarity_score.features.pipeline.extract_features`.
        backend, memory_budget: as for :class:`~rarity_score.manifold.RealManifold`.
        report: build the report (``report/index.html``, ``histogram.png``) when
            :mod:`rarity_score.report` is available.
        command: the command line to record in ``run.json`` (the CLI passes its own).

    Returns:
        The results directory.

    Raises:
        ValueError: bad input, naming the set: an empty set, features of another dimension or
            feature space than the real set, duplicate names, an output folder that cannot be
            used. Nothing is written then.

    Example:
        >>> import json, tempfile, pathlib
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> real = rng.normal(size=(200, 8))
        >>> fakes = {"wide": 1.5 * rng.normal(size=(50, 8)),
        ...          "narrow": 0.5 * rng.normal(size=(50, 8))}
        >>> out = compare(real, fakes, pathlib.Path(tempfile.mkdtemp()) / "run", k=3,
        ...               report=False, progress=False)
        >>> sorted(p.name for p in out.iterdir())
        ['reference_loo.npz', 'run.json', 'sets', 'summary.csv', 'summary.json', 'summary.md']
        >>> [row["name"] for row in read_summary(out)]
        ['wide', 'narrow']
        >>> json.loads((out / "run.json").read_text())["mode"]
        'compare'
    """
    names = _check_names(fakes.keys(), "generated set")
    target = check_output_dir(out_dir)
    extraction = ExtractionOptions(
        extractor, device or "cpu", batch_size, workers, weights, cache_dir, strict, progress,
        shard_size, input_size,
    )  # fmt: skip
    engine = _Engine(backend, device if backend != "numpy" else None, memory_budget)
    entries = [("the real set", "real", real)] + [
        (_label("generated set", name), name, fakes[name]) for name in names
    ]
    _refuse_inputs(target, [(label, source) for label, _, source in entries])
    loaded = _load_inputs(entries, extraction)
    labelled = list(zip([label for label, _, _ in entries], loaded, strict=True))
    _check_k(k, labelled[:1])
    real_set, sets = loaded[0], loaded[1:]

    named = [f"{label} ({printable(s.source)})" for label, s in labelled]
    manifold = engine.manifold(real_set.features.features, k, named[0])
    evaluations = []
    for s, label in zip(sets, named[1:], strict=True):
        logger.info("scoring %r (%d samples) against the real manifold", s.name, len(s.features))
        evaluations.append(manifold.evaluate(s.features.features, metrics=metrics, label=label))
    logger.info("leave-one-out rarity of the real set (the reference curve)")
    reference = manifold.leave_one_out()
    return write_results(
        target,
        mode="compare",
        k=manifold.k,
        sets=sets,
        evaluations=evaluations,
        real=real_set,
        reference=reference,
        command=command,
        report=report,
    )


def compare_datasets(
    datasets: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    k: int = defaults.K,
    extractor: str | FeatureExtractor | None = None,
    device: str | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    workers: int = defaults.WORKERS,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: CacheDir = None,
    strict: bool = False,
    progress: bool = True,
    shard_size: int = defaults.SHARD_SIZE,
    input_size: int | None = None,
    backend: str = defaults.BACKEND,
    memory_budget: int = defaults.MEMORY_BUDGET,
    report: bool = True,
    command: Sequence[str] | None = None,
) -> Path:
    """The paper's dataset comparison: each dataset scored against its own manifold,
    leave-one-out, in one feature space; written as a results directory (mode ``"datasets"``).

    Each sample gets the radius of the smallest sphere of the *other* samples of its own dataset
    that contains it (:meth:`~rarity_score.manifold.RealManifold.leave_one_out`). Compare the
    histograms: the more diverse dataset sits to the right. All datasets must be in one feature
    space (one extractor; feature files of other dimensions or recorded extractors are refused).
    Summary rows have no precision / recall / density / coverage (there is no reference set), and
    each set's ``sphere_index`` refers to rows of that same set. Arguments as for
    :func:`compare`.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> data = {"narrow": 0.5 * rng.normal(size=(100, 4)), "wide": rng.normal(size=(100, 4))}
        >>> out = compare_datasets(data, pathlib.Path(tempfile.mkdtemp()) / "ds", report=False)
        >>> rows = {row["name"]: row for row in read_summary(out)}
        >>> rows["narrow"]["rarity_median"] < rows["wide"]["rarity_median"]
        True
        >>> rows["wide"]["precision"] is None
        True
    """
    names = _check_names(datasets.keys(), "dataset")
    target = check_output_dir(out_dir)
    extraction = ExtractionOptions(
        extractor, device or "cpu", batch_size, workers, weights, cache_dir, strict, progress,
        shard_size, input_size,
    )  # fmt: skip
    engine = _Engine(backend, device if backend != "numpy" else None, memory_budget)
    entries = [(_label("dataset", name), name, datasets[name]) for name in names]
    _refuse_inputs(target, [(label, source) for label, _, source in entries])
    sets = _load_inputs(entries, extraction)
    labelled = list(zip([label for label, _, _ in entries], sets, strict=True))
    _check_k(k, labelled)
    evaluations = []
    for label, s in labelled:
        logger.info("leave-one-out rarity of %r (%d samples)", s.name, len(s.features))
        manifold = engine.manifold(s.features.features, k, f"{label} ({printable(s.source)})")
        evaluations.append(manifold.leave_one_out())
    return write_results(
        target,
        mode="datasets",
        k=int(k),
        sets=sets,
        evaluations=evaluations,
        command=command,
        report=report,
    )


# ---------------------------------------------------------------------- writing


def write_results(
    out_dir: str | os.PathLike[str],
    *,
    mode: str,
    k: int,
    sets: Sequence[InputSet],
    evaluations: Sequence[Evaluation],
    real: InputSet | None = None,
    reference: Evaluation | None = None,
    command: Sequence[str] | None = None,
    report: bool = True,
) -> Path:
    """Write computed evaluations as a results directory, atomically (a temporary sibling folder
    renamed into place), then the report; return the directory.

    ``mode`` is ``"compare"`` or ``"score"`` (``real`` given; ``evaluations[i]`` of ``sets[i]``
    against it; ``reference`` its leave-one-out evaluation) or ``"datasets"`` (no ``real``; each
    evaluation is the set's own leave-one-out one). :func:`compare` and :func:`compare_datasets`
    call it; ``rarity score --report`` too.
    """
    if mode not in METHODS:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(METHODS)}")
    if (real is None) != (mode == "datasets"):
        raise ValueError(f"mode {mode!r} {'takes no' if real is not None else 'needs a'} real set")
    if len(sets) != len(evaluations):
        raise ValueError(f"{len(sets)} sets for {len(evaluations)} evaluations")
    _check_names([s.name for s in sets], "set")
    target = check_output_dir(out_dir)
    everything = ([real] if real is not None else []) + list(sets)
    _refuse_inputs(
        target,
        [(_label("set", s.name), s.source) for s in everything if os.path.isabs(s.source)],
    )
    slugs = _slugs([s.name for s in sets])
    run = _run_record(mode, k, sets, slugs, real, command)

    def write(folder: Path) -> None:
        (folder / "sets").mkdir()
        rows = []
        for s, slug, evaluation in zip(sets, slugs, evaluations, strict=True):
            reference_names = s.features.names if real is None else real.features.names
            _write_set(folder, slug, s.features.names, reference_names, evaluation)
            rows.append(_summary_row(printable(s.name), evaluation))
        if reference is not None and real is not None:
            _write_npz(
                folder / "reference_loo.npz",
                rarity=np.asarray(reference.rarity, dtype=np.float64),
                in_manifold=np.asarray(reference.in_manifold, dtype=bool),
                sphere_index=np.asarray(reference.sphere_index, dtype=np.int64),
                names=_str_array([printable(str(name)) for name in real.features.names]),
            )
        _write_summary(folder, rows, run)
        atomic_write_text(folder / "run.json", json.dumps(run, indent=2, allow_nan=False) + "\n")

    return _publish(target, write, report=report)


def _run_record(
    mode: str,
    k: int,
    sets: Sequence[InputSet],
    slugs: Sequence[str],
    real: InputSet | None,
    command: Sequence[str] | None,
) -> dict[str, Any]:
    from rarity_score import __version__

    everything = ([real] if real is not None else []) + list(sets)
    named = next((s.features for s in everything if s.features.extractor), None)
    dim = everything[0].features.dim
    extractor = (
        None
        if named is None
        else {
            "name": named.extractor,
            "preprocessing": named.preprocessing,
            "weights_id": named.weights_id,
            "dim": dim,
        }
    )
    entries = []
    for s, slug in zip(sets, slugs, strict=True):
        entry = s.describe_for_run()
        entry["slug"] = slug
        entry["table"] = f"sets/{slug}.csv"
        entry["arrays"] = f"sets/{slug}.npz"
        entries.append(entry)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "method": METHODS[mode],
        "command": None if command is None else [printable(str(part)) for part in command],
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "k": int(k),
        "dim": dim,
        "extractor": extractor,
        "real": None if real is None else real.describe_for_run(),
        "sets": entries,
        "real_has_images": real.has_images if real is not None else False,
        "reference_loo": "reference_loo.npz" if real is not None else None,
        "notes": {
            key: text
            for key, text in _NOTES.items()
            if key != "leave-one-out" or mode == "datasets" or real is not None
        },
    }


#: Longest slug kept as it is; a longer one is cut and given a hash of the whole name, so that
#: ``sets/<slug>.csv`` stays far below the 255-byte limit of a file name.
_SLUG_LIMIT = 100

#: File names Windows reserves whatever their extension.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{port}{i}" for port in ("com", "lpt") for i in range(1, 10)]
)


def _slugs(names: Sequence[str]) -> list[str]:
    """File-safe, unique (also ignoring case) slugs of at most about 110 characters:
    ``"psi=0.7" -> "psi_0.7"``; a long name keeps its first 100 characters and a hash of all.

    >>> _slugs(["psi=0.7", "PSI=0.7", "con"])
    ['psi_0.7', 'PSI_0.7-2', '_con']
    >>> len(_slugs(["x" * 10_000])[0])
    111
    """
    out: list[str] = []
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "set"
        if len(base) > _SLUG_LIMIT:
            whole = name.encode("utf-8", "surrogatepass")
            base = f"{base[:_SLUG_LIMIT].rstrip('._-')}-{hashlib.sha256(whole).hexdigest()[:10]}"
        if base.split(".")[0].lower() in _RESERVED:
            base = f"_{base}"
        slug, i = base, 2
        while slug.lower() in taken:
            slug, i = f"{base}-{i}", i + 1
        taken.add(slug.lower())
        out.append(slug)
    return out


def _summary_row(name: str, evaluation: Evaluation) -> dict[str, Any]:
    summary = evaluation.summary()
    n = int(summary["n_fake"])
    n_in = int(summary["n_in_manifold"])
    rarity = summary["rarity"] or {}
    return {
        "name": name,
        "n": n,
        "n_in_manifold": n_in,
        "fraction_in_manifold": n_in / n if n else None,
        "n_out_of_manifold": n - n_in,
        "rarity_mean": rarity.get("mean"),
        "rarity_median": rarity.get("median"),
        "rarity_q10": rarity.get("q10"),
        "rarity_q90": rarity.get("q90"),
        "precision": summary["precision"],
        "recall": summary["recall"],
        "density": summary["density"],
        "coverage": summary["coverage"],
    }


def _write_set(
    folder: Path,
    slug: str,
    names: Sequence[str],
    reference_names: Sequence[str],
    evaluation: Evaluation,
) -> None:
    in_manifold = np.asarray(evaluation.in_manifold, dtype=bool)
    sphere = np.asarray(evaluation.sphere_index, dtype=np.int64)
    nearest = evaluation.nearest_real_index
    # Arrays of metrics that were not computed are left out (never filled with made-up values);
    # ``metrics`` lists what was computed.
    arrays: dict[str, np.ndarray] = {
        "rarity": np.asarray(evaluation.rarity, dtype=np.float64),
        "in_manifold": in_manifold,
        "sphere_index": sphere,
    }
    for key, values, dtype in (
        ("nearest_real_index", nearest, np.int64),
        ("nearest_real_distance", evaluation.nearest_real_distance, np.float64),
        ("realism", evaluation.realism, np.float64),
        ("sphere_count", evaluation.sphere_count, np.int64),
    ):
        if values is not None:
            arrays[key] = np.asarray(values, dtype=dtype)
    arrays["names"] = _str_array([printable(str(name)) for name in names])
    arrays["metrics"] = _str_array(evaluation.metrics)
    _write_npz(folder / "sets" / f"{slug}.npz", **arrays)

    header = ["index", "name", *evaluation.per_sample_columns(), "sphere_name", "nearest_real_name"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(evaluation.per_sample_rows(names)):  # names made csv_cell there
        row["sphere_name"] = csv_cell(str(reference_names[sphere[i]])) if in_manifold[i] else ""
        row["nearest_real_name"] = (
            csv_cell(str(reference_names[int(nearest[i])]))
            if nearest is not None and nearest[i] >= 0
            else ""
        )
        writer.writerow(row)
    atomic_write_text(folder / "sets" / f"{slug}.csv", buffer.getvalue())


def _write_summary(folder: Path, rows: list[dict[str, Any]], run: Mapping[str, Any]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row[key]) for key in SUMMARY_COLUMNS})
    atomic_write_text(folder / "summary.csv", buffer.getvalue())
    atomic_write_text(folder / "summary.json", json.dumps(rows, indent=2, allow_nan=False) + "\n")
    atomic_write_text(folder / "summary.md", _markdown(rows, run))


def _markdown(rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any]) -> str:
    extractor = run.get("extractor") or {}
    lines = [
        "# Rarity score: summary",
        "",
        f"- method: {run['method']}",
        f"- k: {run['k']}",
        f"- feature extractor: {extractor.get('name') or 'unknown (precomputed features)'}"
        f" ({run['dim']}-d)",
    ]
    if run.get("real"):
        lines.append(
            f"- real set: {_md_escape(run['real']['source'])} ({run['real']['n']} samples)"
        )
    lines += [
        "- rarity statistics are over in-manifold samples only",
        "",
    ]
    columns = _table_columns(str(run["mode"]))
    lines.append("| " + " | ".join(title for _, title in columns) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|")
    for row in rows:
        cells = [_md_escape(str(row["name"]))] + [_format_value(key, row) for key, _ in columns[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>|])", r"\\\1", text)


def _csv_cell(value: Any) -> str:
    """A summary cell: numbers as they are (``-1.5`` stays a number), text neutralised against
    formula injection (:func:`rarity_score.io.names.csv_cell`)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bool, int, np.integer, np.floating)):
        return str(value)
    return csv_cell(str(value))


def _str_array(values: Sequence[str]) -> np.ndarray:
    return (
        np.array([str(v) for v in values], dtype=str) if len(values) else np.zeros(0, dtype="<U1")
    )


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------------- the output directory


def is_results_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a results directory (it holds a ``run.json`` of this format)."""
    from rarity_score.io.run_record import read_json

    try:
        run = read_json(Path(path) / "run.json")
    except (OSError, ValueError):  # read_json gives one ValueError for any damaged file
        return False
    return isinstance(run, dict) and run.get("format") == FORMAT


#: The file of a results directory that holds the list of the others (``run.json["files"]``).
_OWN = ("run.json",)


def check_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an output directory that cannot be used; return it as a Path.

    Usable: a path that does not exist yet in a writable folder, an empty folder, or an earlier
    results directory that holds exactly the files it lists in ``run.json["files"]``, unchanged
    (replaced at the end of the run). Raises ValueError otherwise, naming the folder and up to
    three of the files that are not the project's.

    First removes what runs killed while publishing left behind (only what the journal of
    :mod:`rarity_score.io.publish` proves to be theirs; an old results directory moved aside
    is put back in its place).
    """
    publish.clean_stale()
    target = Path(out_dir)
    shown = printable(str(target))
    if target.is_symlink():
        raise ValueError(
            f"cannot write results to {shown}: it is a symbolic link; give the folder it points "
            "to or a new folder"
        )
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"cannot write results to {shown}: it exists and is not a folder")
        if any(target.iterdir()):
            manifest = _recorded_files(target)
            foreign = publish.foreign_entries(target, manifest, own=_OWN)
            if foreign:
                raise ValueError(
                    f"cannot write results to {shown}: it holds files rarity-score did not "
                    f"write or that changed since ({publish.describe_foreign(foreign)}); move "
                    "them elsewhere or give a new folder"
                )
    parent = target.absolute().parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"cannot write results to {shown}: {printable(str(parent))} {problem}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot write results to {shown}: folder {printable(str(parent))} is not writable"
        )
    return target


def _recorded_files(target: Path) -> dict[str, dict[str, Any]]:
    """The list of files an earlier run recorded in ``target/run.json``; ValueError when the
    folder is not a results directory, or one that does not list its files."""
    shown = printable(str(target))
    if not is_results_dir(target):
        raise ValueError(
            f"cannot write results to {shown}: the folder is not empty and is not a results "
            "directory (no run.json of rarity-score); move its files elsewhere or give a new "
            "folder"
        )
    try:
        run = json.loads((target / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    manifest = publish.read_manifest(run.get("files") if isinstance(run, dict) else None)
    if manifest is None:
        raise ValueError(
            f"cannot write results to {shown}: its run.json does not list the files it holds "
            "(a results directory of an earlier rarity-score version, or an edited one), so "
            "they cannot be told apart from yours; delete it yourself or give a new folder"
        )
    return manifest


def _publish(target: Path, write: Callable[[Path], None], *, report: bool) -> Path:
    """Write into a temporary sibling folder, build the report there, record the list of files
    in its run.json, then move it into place (see :mod:`rarity_score.io.publish`)."""
    check_output_dir(target)
    place = Path(os.path.abspath(target))  # a name even for "." (renamed as a whole)
    with publish.staging_folder(place.parent, place.name, shown=target) as staging:
        try:
            write(staging)
            if report:
                _try_report(staging)
            publish.remove_empty_folders(staging)  # a staging folder: all ours
            publish.record_files(staging, own=_OWN)
            occupied = target.is_dir() and not target.is_symlink() and any(target.iterdir())
            manifest = _recorded_files(target) if occupied else None
            publish.replace_folder(
                staging, place, manifest, own=_OWN, refuse="cannot write results to"
            )
        except OSError as error:  # named as the user named it, never as the temporary folder
            raise _renamed(error, staging, target) from error
    logger.info("wrote results to %s", printable(str(target)))
    return target


def _renamed(error: OSError, staging: Path, target: Path) -> OSError:
    """``error`` with the staging folder's path replaced by the target's (a full disk stays a
    :class:`StorageFullError`: exit 1)."""
    text = str(error).replace(os.fspath(staging), os.fspath(target))
    if os.fspath(target) not in text:
        text = f"cannot write {os.fspath(target)}: {error.strerror or error}"
    out = StorageFullError(text) if is_machine_failure(error) else OSError(text)
    out.errno = error.errno
    return out


def _try_report(folder: Path) -> None:
    """Build the report into ``folder``; a missing or failing report module leaves a log note
    (the results stay; ``rarity report DIR`` rebuilds it)."""
    try:
        build_results_report(folder)
    except ImportError as error:
        logger.warning("report not built (%s); the results are complete without it", error)
    except Exception as error:  # the results matter more than their presentation
        if is_machine_failure(error) or isinstance(error, MemoryError):
            raise  # but a full disk or memory is the machine's failure: exit 1, not a note
        logger.debug("report failure", exc_info=True)
        logger.warning(
            "the report could not be built (%s); the results are saved, rebuild it with "
            "`rarity report DIR`",
            error,
        )


# ---------------------------------------------------------------------- reading back


def read_run(results_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``run.json`` of a results directory, validated (:func:`~rarity_score.io.run_record.
    validate_run`: every key the package reads is there, with its type); ValueError (one line
    naming the file and field) when ``results_dir`` is not one or its ``run.json`` is damaged."""
    from rarity_score.io.run_record import read_run_record

    return read_run_record(results_dir)


def read_summary(results_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The summary rows of a results directory (``summary.json``), one per set, in run order;
    ValueError (one line naming the file) when they are damaged or are not the run's sets."""
    from rarity_score.io.run_record import inside, read_json, validate_summary

    run = read_run(results_dir)
    path = inside(Path(results_dir), "summary.json", str(results_dir))
    try:
        rows = read_json(path)
    except FileNotFoundError as error:
        raise ValueError(f"{path} is missing: the results directory is incomplete") from error
    return validate_summary(rows, str(path), [entry["name"] for entry in run["sets"]])


def build_results_report(results_dir: str | os.PathLike[str]) -> Path:
    """(Re)build the report of a results directory from its saved files, recomputing nothing.

    Calls :func:`rarity_score.report.build_report` (and ``plot_histograms`` when it left no
    ``histogram.png``); returns the path of ``report/index.html``. Raises ValueError when
    ``results_dir`` is not a results directory, ImportError when the report module is missing.
    """
    read_run(results_dir)
    import importlib

    module = importlib.import_module("rarity_score.report")
    build_report = getattr(module, "build_report", None)
    if build_report is None:  # a namespace package: the report part is not installed yet
        raise ImportError("rarity_score.report has no build_report (the report is not available)")
    index = Path(build_report(results_dir))  # which lists its files in run.json["files"]
    png = Path(results_dir) / "histogram.png"
    if not png.exists() and hasattr(module, "plot_histograms"):
        module.plot_histograms(results_dir, png)
    return index


# ---------------------------------------------------------------------- the printed table


def _table_columns(mode: str) -> list[tuple[str, str]]:
    columns = [
        ("name", "set"),
        ("n", "n"),
        ("n_in_manifold", "in manifold"),
        ("fraction_in_manifold", "fraction in"),
        ("rarity_mean", "mean"),
        ("rarity_median", "median"),
        ("rarity_q10", "q10"),
        ("rarity_q90", "q90"),
    ]
    if mode != "datasets":
        columns += [
            ("precision", "precision"),
            ("recall", "recall"),
            ("density", "density"),
            ("coverage", "coverage"),
        ]
    return columns


def _format_value(key: str, row: Mapping[str, Any]) -> str:
    value = row.get(key)
    if value is None:
        return "n/a"
    if key in ("n", "n_in_manifold", "n_out_of_manifold"):
        return str(int(value))
    if key == "fraction_in_manifold":
        return f"{100 * float(value):.1f} %"
    return f"{float(value):.4g}"


def format_table(rows: Sequence[Mapping[str, Any]], mode: str = "compare") -> str:
    """The summary rows as an aligned text table (what ``rarity compare`` prints); rarity
    statistics are over in-manifold samples; ``datasets`` mode has no precision .. coverage.

    >>> rows = [{"name": "a", "n": 4, "n_in_manifold": 3, "fraction_in_manifold": 0.75,
    ...          "rarity_mean": 1.5, "rarity_median": 1.25, "rarity_q10": 1.0, "rarity_q90": 2.0}]
    >>> print(format_table(rows, "datasets"), end="")
    set  n  in manifold  fraction in  mean  median  q10  q90
    a    4            3       75.0 %   1.5    1.25    1    2
    """
    columns = _table_columns(mode)
    table = [[title for _, title in columns]]
    for row in rows:
        name = printable(str(row["name"]))
        table.append([name] + [_format_value(key, row) for key, _ in columns[1:]])
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
