"""``rarity spaces``: the same samples scored in several feature spaces, and the spaces compared.

One function, :func:`compare_spaces`, two ways in:

* from images (``real`` and ``fakes`` given): ``spaces`` are space specs, an extractor name
  optionally followed by ``+pcaN`` (``pixels+pca64``: the features projected on the N leading
  principal directions of the real set, :mod:`rarity_score.features.projection`). The inputs
  are loaded once per space (:func:`rarity_score.sources.load_inputs`, features cached per
  extractor as usual) and scored as :func:`~rarity_score.compare.compare` scores them
  (:func:`~rarity_score.compare.score_sets`); each space's results directory, with its report,
  is written to ``OUT/spaces/<slug>/``;
* from results directories (``spaces`` are their paths): nothing is recomputed.

``statistics`` (``--bootstrap``, ``--subsample``, ``--stability``) applies when images are
scored: each space's results directory gets its intervals, comparisons and stability as
:func:`~rarity_score.compare.compare` makes them, and a subsample draws the same samples of a
set in every space (checked). The agreement of the spaces has point values only. Results
directories are compared as they were scored: those options are refused there (one line), the
intervals a directory holds are named in the output, and real sets of different sizes (a
directory scored with ``--subsample``) are compared with a warning the output keeps
(:mod:`rarity_score.spaces.match`).

Either way the results directories are then lined up (:func:`rarity_score.spaces.match.align`)
and compared (:mod:`rarity_score.spaces.agreement`), and the output written
(:mod:`rarity_score.spaces.output`) into one staging folder published whole: an interrupted run
leaves no half output.

Everything that can be checked is checked before the first space is extracted: the spaces
(names, specs, the same space twice, ``+pcaN`` against the extractor's dimension), scipy and
scikit-learn, ``OUT`` (new, empty or an earlier output of ``rarity spaces``; neither an input,
nor inside one, nor holding one or the feature cache) and every space's weights; ``k`` and
every ``+pcaN`` against the size of the real set as soon as the first space has loaded it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from rarity_score import defaults, sources
from rarity_score._validation import check_k
from rarity_score.compare import (
    Comparison,
    check_output,
    checked_statistics,
    compare_entries,
    score_sets,
    try_report,
)
from rarity_score.io.images import open_images
from rarity_score.io.names import printable, shorten, slugs
from rarity_score.options import EngineOptions, ExtractionOptions, StatisticsOptions
from rarity_score.results_dir import OutputDir, Results, load_results
from rarity_score.results_dir.write import check_output_dir
from rarity_score.sources import label
from rarity_score.spaces.agreement import require_libraries
from rarity_score.spaces.match import align
from rarity_score.spaces.output import (
    SpacesWritten,
    publish_spaces,
    space_record,
    write_spaces,
    write_spaces_files,
)

if TYPE_CHECKING:
    from rarity_score.features.info import FeatureExtractor
    from rarity_score.sources import InputSet

__all__ = ["SpacesRun", "compare_spaces"]

logger = logging.getLogger(__name__)

#: What :func:`compare_spaces` returns: the output folder (``.path``), its ``run.json`` as
#: written, with the list of files (``.run``), and the summary rows (``.rows``, one per set and
#: pair of spaces, as in ``summary.json``).
SpacesRun = SpacesWritten

#: A space given to :func:`compare_spaces`: a space spec or a results directory; from Python,
#: a :class:`~rarity_score.features.info.FeatureExtractor` also names a space of images.
Space: TypeAlias = "str | os.PathLike[str] | FeatureExtractor"


def compare_spaces(
    spaces: Sequence[Space] | Mapping[str, Space],
    out_dir: str | os.PathLike[str],
    *,
    real: Any = None,
    fakes: Mapping[str, Any] | None = None,
    k: int | None = None,
    metrics: Iterable[str] | str | None = None,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
    statistics: StatisticsOptions | None = None,
    report: bool = True,
    command: Sequence[str] | None = None,
) -> SpacesRun:
    """Score the same samples in several feature spaces, or take results directories that did,
    and compare the spaces: per generated set and pair of spaces, rank correlations of rarity,
    agreement of the in-manifold flags, overlap of the rarest and of the most common samples.

    Args:
        spaces: at least two spaces, in the order of the outputs. With ``real`` and ``fakes``:
            space specs (``"vgg16-fc2"``, ``"efficientnet-lite0-stage2"``, ``"pixels+pca64"``;
            from Python also a :class:`~rarity_score.features.info.FeatureExtractor`), each
            named by its spec as the registry spells it (an object by its ``info.name``).
            Without them: results directories of ``rarity compare`` or ``rarity score
            --report`` on the same samples, each named by its folder. A mapping names the
            spaces by its keys. The same space twice (``"pixels"`` and ``"PIXELS"``, one
            directory under two names) is refused.
        out_dir: the output folder; created, or replaced if it holds exactly an earlier output
            of ``rarity spaces`` (the files its ``run.json`` lists, unchanged); any other
            non-empty folder, an output of another command included, is refused before any
            work, and nothing in it is deleted. It must not be, lie in or hold an input (images
            or results directory), nor be or hold the feature cache. Its files are one unit,
            the per-space results directories and their reports included: rebuild the report
            with ``rarity report OUT``, never a part of it (an edited file makes the folder one
            the next run refuses to replace).
        real: the real reference set (images: a folder, an archive, a ``.txt`` list, ...): the
            inputs are scored in each space. Feature files are refused here: they hold one
            space only.
        fakes: generated set name -> images (a mapping), as for
            :func:`~rarity_score.compare.compare`.
        k: neighbourhood size of the k-NN spheres (scoring images only; None: the default,
            :data:`rarity_score.defaults.K`). Refused with results directories, which are
            compared as they were scored.
        metrics: the metrics to compute in each space (default: all); rarity, which the spaces
            are compared by, is always among them. Scoring images only.
        extraction: how images become features; its ``extractor`` is replaced by each space's.
            Its ``weights`` file is refused when the spaces use more than one network (the
            layers of one network share it), and its ``input_size`` applies to every space.
            Scoring images only.
        engine: how the sweeps run (:class:`~rarity_score.options.EngineOptions`).
        statistics: scoring images only: bootstrap intervals, subsets and stability of each
            space's results directory, as :func:`~rarity_score.compare.compare` makes them
            (:class:`~rarity_score.options.StatisticsOptions`; None: point values of every
            sample). ``subsample`` draws the same samples in every space (the draw depends on
            the seed, the set's name and its size, which are the same in every space). The
            agreement of the spaces has no intervals. With results directories only None or
            the defaults are taken (nothing is rescored: score each space with ``--bootstrap``;
            the intervals its directory holds are recorded and shown).
        report: build the reports: the output's (``report/index.html``) and, when scoring
            images, each space's results directory's; a missing optional dependency of the
            report leaves one warning and the output without it.
        command: the command line to record in ``run.json`` (the CLI passes its own).

    Returns:
        A :data:`SpacesRun`: the output folder (``.path``), its ``run.json`` (``.run``) and the
        summary rows (``.rows``).

    Raises:
        ValueError: bad input, before anything is written: fewer than two spaces, duplicate
            names or the same space twice, an unknown extractor or a bad ``+pcaN``, ``fakes``
            that is not a mapping, a results directory that cannot be read or is itself an
            output of ``rarity spaces``, sets or samples that do not match across the spaces
            (naming the two directories, the set and up to three names), an output folder that
            cannot be used; ``k`` or a ``+pcaN`` too large for the real set, before any space
            is scored; bootstrap, subsample or stability asked of results directories.
        WeightsUnavailable: a space's weights cannot be had (checked before the first
            extraction).
        MissingDependency: scipy or scikit-learn (the ``spaces`` extra), or what an extractor
            needs, is not installed.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> from rarity_score.compare import compare
        >>> rng = np.random.default_rng(0)
        >>> real, fake = rng.normal(size=(80, 4)), rng.normal(size=(40, 4))
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> a = compare(real, {"s": fake}, folder / "a", report=False).path
        >>> b = compare(3 * real + 1, {"s": 3 * fake + 1}, folder / "b", report=False).path
        >>> run = compare_spaces({"A": a, "B": b}, folder / "out", report=False)
        >>> row = run.rows[0]
        >>> row["set"], row["space_a"], row["space_b"], row["spearman"], row["jaccard_rarest"]
        ('s', 'A', 'B', 1.0, 1.0)
    """
    if isinstance(spaces, (str, bytes, os.PathLike)):
        raise ValueError(
            f"spaces must be a list or a mapping of at least two spaces, not the one "
            f"{shorten(printable(os.fsdecode(spaces)))!r}"
        )
    if fakes is not None and not isinstance(fakes, Mapping):
        raise ValueError(
            "fakes must be a mapping of generated set name -> images (e.g. {'psi0.7': "
            f"'samples/psi0.7'}}), not {type(fakes).__name__}"
        )
    from_images = real is not None or fakes is not None
    if from_images:
        if real is None or fakes is None:
            raise ValueError(
                "give both real= and fakes= to score images in each space, or neither to "
                "compare results directories"
            )
        settings = _Scoring(
            k=check_k(defaults.K if k is None else k),
            metrics=_with_rarity(metrics),
            extraction=extraction or ExtractionOptions(),
            engine=engine,
            report=report,
            command=None if command is None else tuple(command),
            statistics=checked_statistics(statistics),
        )
        image_spaces = _image_spaces(spaces, settings.extraction)
        require_libraries()
        return _from_images(image_spaces, out_dir, real, fakes, settings)
    for given, what in ((k, "k"), (metrics, "metrics"), (extraction, "extraction")):
        if given is not None:
            raise ValueError(
                f"{what}= applies when images are scored (real= and fakes=); results "
                "directories are compared as they were scored"
            )
    _check_no_rescoring(statistics)
    named = _result_spaces(spaces)
    require_libraries()
    return _from_results(named, out_dir, report, command)


def _check_no_rescoring(statistics: StatisticsOptions | None) -> None:
    """Results directories are compared as they were scored: bootstrap, subsample and
    stability, which need the sweeps, are refused (one line saying where to ask for them)."""
    if statistics is None:
        return
    asked = [
        words
        for given, words in (
            (statistics.intervals, "bootstrap intervals (--bootstrap)"),
            (statistics.subsample is not None, "a subsample (--subsample)"),
            (statistics.stability, "stability (--stability)"),
        )
        if given
    ]
    if asked:
        raise ValueError(
            f"{' and '.join(asked)} need the spaces scored: results directories are compared "
            "as they were scored, so give real= and fakes= (--real, --fake, --extractor) or "
            "score each space's results directory with them (rarity compare --bootstrap B); "
            "the intervals a directory holds are shown"
        )


def _space_label(name: str) -> str:
    return label("space", name)


def _pairs(spaces: Sequence[Space] | Mapping[str, Space]) -> list[tuple[str | None, Any]]:
    """``(name, space)`` in order: a mapping's keys; None where the name is the space's own."""
    if isinstance(spaces, Mapping):
        return list(spaces.items())
    return [(None, space) for space in spaces]


def _check_count(names: Sequence[str]) -> list[str]:
    """The space names checked: distinct, non-empty, at least two."""
    checked = sources.check_names(names, "space")
    if len(checked) < 2:
        raise ValueError(
            f"give at least two spaces to compare, not {len(checked)} ({shorten(checked[0])!r})"
        )
    return checked


def _twice(first: str, second: str, what: str, shown: str) -> ValueError:
    if first == second:
        return ValueError(
            f"space {shorten(first)!r} is given twice: the same {what} twice ({shown}); give "
            "each space once"
        )
    return ValueError(
        f"spaces {shorten(first)!r} and {shorten(second)!r} are the same {what} twice "
        f"({shown}); give each space once"
    )


# ---------------------------------------------------------------------- from images


@dataclass(frozen=True)
class _Scoring:
    """How every space of the image form is scored, and what its results directory records."""

    k: int
    metrics: list[str] | None
    extraction: ExtractionOptions
    engine: EngineOptions | None
    report: bool
    command: tuple[str, ...] | None
    #: Intervals, subsets and stability of each space's results directory.
    statistics: StatisticsOptions

    def real_size(self, n: int) -> int:
        """The size of a real set of ``n`` samples as scored (``--subsample`` cuts it)."""
        subsample = self.statistics.subsample
        return n if subsample is None else min(n, subsample)

    def subsets(self, sets: Sequence[InputSet]) -> list[InputSet]:
        """The loaded sets, each cut to ``statistics.subsample`` samples when asked: the rows
        drawn depend on the seed, the set's name and its size only, so every space draws the
        same samples of a set (its images listed, hence loaded, in the same order)."""
        subsample = self.statistics.subsample
        if subsample is None:
            return list(sets)
        return [s.subset(subsample, self.statistics.seed) for s in sets]


@dataclass(frozen=True)
class _ImageSpace:
    """One space of the image form, resolved before any work."""

    name: str
    #: A registry name as the registry spells it, or the extractor object given.
    extractor: str | FeatureExtractor
    #: The number of principal directions (``+pcaN``); None: the features as they are.
    pca: int | None
    #: What the features record as their extractor (``"pixels+pca64"``).
    spec: str
    #: The network the weights belong to (``ExtractorInfo.family``); None for an object.
    family: str | None
    #: The extraction options of this space (its extractor set).
    options: ExtractionOptions


def _image_spaces(
    spaces: Sequence[Space] | Mapping[str, Space], extraction: ExtractionOptions
) -> list[_ImageSpace]:
    """Resolve the spaces of the image form (see :func:`compare_spaces`): each refused,
    naming it, when its spec is unknown or malformed, it is given twice, its ``+pcaN`` exceeds
    its extractor's dimension, or the extraction options do not apply to it."""
    resolved = []
    # spec (an object: the object itself, as two objects of one name may hold other weights)
    # -> the name of the space that has it
    seen: dict[object, str] = {}
    for given, space in _pairs(spaces):
        shown = given if given is not None else _given_text(space)
        extractor, n, spec, dim, family = _spec(shown, space, extraction.input_size)
        name = given if given is not None else spec
        key = spec if isinstance(extractor, str) else id(extractor)
        if key in seen:
            raise _twice(seen[key], shown, "extractor", spec)
        seen[key] = shown
        if n is not None and dim is not None and n > dim:
            raise ValueError(
                f"{_space_label(shown)}: +pca{n} asks for more principal directions than the "
                f"{dim} dimensions of {spec.rpartition('+')[0]}; use +pcaN with N <= {dim}"
            )
        try:
            options = replace(extraction, extractor=extractor)
        except ValueError as error:  # weights or input_size given with an extractor object
            raise ValueError(f"{_space_label(shown)}: {error}") from error
        resolved.append(_ImageSpace(name, extractor, n, spec, family, options))
    _check_count([space.name for space in resolved])
    networks = {space.family or f"object {id(space.extractor)}" for space in resolved}
    if extraction.weights is not None and len(networks) > 1:
        raise ValueError(
            "a weights file belongs to one network, and these spaces use "
            f"{len(networks)}: give no weights file (--weights; put the files in the torch hub "
            "checkpoints folder instead) or compare the spaces of one network"
        )
    return resolved


def _given_text(space: Any) -> str:
    if hasattr(space, "info"):
        return str(space.info.name)
    return space if isinstance(space, str) else type(space).__name__


def _spec(
    name: str, space: Any, input_size: int | None
) -> tuple[str | FeatureExtractor, int | None, str, int | None, str | None]:
    """A space's extractor (a registry name, or the object given), its PCA size (None: none),
    the spec the projected features record, the extractor's dimension and its network; refused
    (naming the space) before any work when the name is unknown, the spec malformed or
    ``input_size`` one the extractor refuses."""
    from rarity_score.features.projection import parse_space
    from rarity_score.features.registry import info

    if hasattr(space, "info") and hasattr(space, "preprocess"):
        return space, None, str(space.info.name), getattr(space.info, "dim", None), None
    if not isinstance(space, str):
        raise ValueError(
            f"{_space_label(name)}: expected a space spec (an extractor name, optionally "
            f"+pcaN), not {type(space).__name__}"
        )
    try:
        base, n = parse_space(space)
    except ValueError as error:  # it names the spec: the space's name only when another
        raise (ValueError(f"{_space_label(name)}: {error}") if name != space else error) from None
    try:
        # Unknown names refused (listing the known ones), and a size the extractor cannot take.
        described = info(base, input_size=input_size)
    except ValueError as error:
        raise ValueError(f"{_space_label(name)}: {error}") from error
    canonical = described.name
    spec = canonical if n is None else f"{canonical}+pca{n}"
    return canonical, n, spec, described.dim, described.family


def _check_weights(spaces: Sequence[_ImageSpace], extraction: ExtractionOptions) -> None:
    """Every registry space's packages and weights at hand (fetched where the builder would
    fetch them), before the first extraction: a missing one is its one-line error now, not
    after the spaces before it have been scored."""
    from rarity_score.features.registry import check_available

    for name in dict.fromkeys(s.extractor for s in spaces if isinstance(s.extractor, str)):
        assert isinstance(name, str)
        check_available(name, weights=extraction.weights, input_size=extraction.input_size)


def _from_images(
    spaces: Sequence[_ImageSpace],
    out_dir: str | os.PathLike[str],
    real: Any,
    fakes: Mapping[str, Any],
    settings: _Scoring,
) -> SpacesRun:
    entries = compare_entries(real, fakes)
    for where, _, source in entries:
        if sources.kind_of(source) == "features":
            shown = os.fsdecode(source) if isinstance(source, (str, os.PathLike)) else None
            raise ValueError(
                f"{where} is features ({shorten(printable(shown or type(source).__name__))}), "
                "which lie in one feature space: give images, to be scored in each space, or "
                "compare results directories made in each space"
            )
    target = check_output(out_dir, entries, settings.extraction, kind="spaces")
    _check_weights(spaces, settings.extraction)
    # The real set's size is known from its listing: k and every +pcaN are checked against it
    # before the first extraction (and again once loaded, which leaves unreadable images out).
    try:
        with contextlib.closing(open_images(real)) as listed:
            _check_sizes(spaces, settings.real_size(len(listed)), settings.k)
    except ValueError as error:  # a missing or empty folder: named as the real set
        raise ValueError(f"{entries[0][0]}: {error}") from error
    space_slugs = slugs([space.name for space in spaces])

    def fill(folder: Path) -> SpacesWritten:
        (folder / "spaces").mkdir()
        loaded: list[tuple[str, Results]] = []
        records = []
        drawn: list[tuple[str, list[str]]] = []  # the samples the first space scored
        for i, (space, slug) in enumerate(zip(spaces, space_slugs, strict=True)):
            logger.info("space %d of %d: %r", i + 1, len(spaces), space.name)
            real_set, *sets = settings.subsets(sources.load_inputs(entries, space.options))
            if i == 0:  # the real set is the same in every space: its size checked once
                _check_sizes(spaces, len(real_set.features), settings.k)
                drawn = _drawn(real_set, sets)
            else:
                _check_drawn(space.name, drawn, _drawn(real_set, sets))
            compared = _score_space(space, real_set, sets, settings)
            path = folder / "spaces" / slug
            compared.save(
                OutputDir(path), report=settings.report, command=settings.command, announce=False
            )
            results = load_results(path)
            loaded.append((space.name, results))
            records.append(
                space_record(space.name, results, slug=slug, results_path=f"spaces/{slug}")
            )
        written = write_spaces_files(
            folder, align(loaded), records, k=settings.k, command=settings.command
        )
        if settings.report:
            try_report(folder, _spaces_report)
        return written

    return publish_spaces(target, fill)


def _drawn(real_set: InputSet, sets: Sequence[InputSet]) -> list[tuple[str, list[str]]]:
    """The names of the samples scored in one space, per set (the real set first)."""
    return [(s.name, list(s.features.names)) for s in (real_set, *sets)]


def _check_drawn(
    name: str, first: Sequence[tuple[str, list[str]]], drawn: Sequence[tuple[str, list[str]]]
) -> None:
    """The same samples scored in every space (a subsample included): else a ValueError
    naming the space and the set (the images changed while the spaces were scored)."""
    for (set_name, expected), (_, names) in zip(first, drawn, strict=True):
        if names != expected:
            raise ValueError(
                f"{_space_label(name)}: the samples of {label('set', set_name)} are not those "
                f"the first space scored ({len(names)} and {len(expected)} samples); did the "
                "images change during the run?"
            )


def _check_sizes(spaces: Sequence[_ImageSpace], n_real: int, k: int) -> None:
    """k, and every space's ``+pcaN``, against the size of the real set (before any scoring)."""
    check_k(k, n_real, label="the real set")
    for space in spaces:
        if space.pca is not None and space.pca > n_real - 1:
            raise ValueError(
                f"{_space_label(space.name)}: +pca{space.pca} needs at least {space.pca + 1} "
                f"real samples (a centred set of m samples spans at most m - 1 directions), and "
                f"the real set has {n_real}; use +pcaN with a smaller N or more real images"
            )


def _score_space(
    space: _ImageSpace, real_set: InputSet, sets: Sequence[InputSet], settings: _Scoring
) -> Comparison:
    """Score the inputs loaded in one space (projected when it asks for it)."""
    from rarity_score.features.projection import Projection, project

    if space.pca is not None:
        try:
            projection = Projection.fit(real_set.features.features, space.pca)
        except ValueError as error:
            raise ValueError(f"{_space_label(space.name)}: {error}") from error
        real_set, *sets = (
            replace(s, features=project(s.features, projection, space.spec))
            for s in (real_set, *sets)
        )
    return score_sets(
        real_set,
        sets,
        k=settings.k,
        metrics=settings.metrics,
        engine=settings.engine,
        statistics=settings.statistics,
    )


def _with_rarity(metrics: Iterable[str] | str | None) -> list[str] | None:
    """The metrics asked for, with rarity (the spaces are compared by it); None: all."""
    if metrics is None:
        return None
    from rarity_score import metrics as registry

    names = registry.check_names(metrics)
    return list(names) if "rarity" in names else ["rarity", *names]


def _spaces_report(folder: Path) -> None:
    from rarity_score.report.spaces import build_spaces_report

    build_spaces_report(folder)


# ---------------------------------------------------------------------- from results directories


def _result_spaces(spaces: Sequence[Space] | Mapping[str, Space]) -> list[tuple[str, str]]:
    """``(name, path)`` of each results directory: a mapping's keys, else the folder's name;
    the same directory twice (also under two names, or through a link) refused."""
    out: list[tuple[str, str]] = []
    seen: dict[str, str] = {}  # real path -> the name of the space that has it
    for given, space in _pairs(spaces):
        if not isinstance(space, (str, os.PathLike)):
            raise ValueError(f"a space must be a results directory, not {type(space).__name__}")
        path = os.fsdecode(os.fspath(space))
        name = given if given is not None else (Path(os.path.abspath(path)).name or path)
        real = os.path.realpath(path)
        if real in seen:
            raise _twice(seen[real], name, "results directory", shorten(printable(path)))
        seen[real] = name
        out.append((name, path))
    _check_count([name for name, _ in out])
    return out


def _from_results(
    named: Sequence[tuple[str, str]],
    out_dir: str | os.PathLike[str],
    report: bool,
    command: Sequence[str] | None,
) -> SpacesRun:
    target = check_output_dir(
        out_dir,
        [(f"the results directory of {_space_label(name)}", path) for name, path in named],
        kind="spaces",
    )
    loaded = [(name, load_results(path)) for name, path in named]  # a spaces output: refused
    aligned = align(loaded)
    space_slugs = slugs([name for name, _ in loaded])
    records = [
        space_record(name, results, slug=slug)
        for (name, results), slug in zip(loaded, space_slugs, strict=True)
    ]
    ks = {name: results.run.get("k") for name, results in loaded}
    warnings = []
    if len(set(ks.values())) > 1:
        warnings.append(
            "the spaces were scored with different k ("
            + ", ".join(f"{shorten(printable(name), 40)}: k = {k}" for name, k in ks.items())
            + "): each space's rarities are radii of its own k-NN spheres"
        )
        logger.warning("%s", warnings[-1])
    k = next(iter(ks.values())) if len(set(ks.values())) == 1 else None
    return write_spaces(
        target,
        aligned,
        records,
        k=k,
        command=command,
        report=(lambda folder: try_report(folder, _spaces_report)) if report else None,
        warnings=warnings,
    )
