"""Compare several generated sets against one real set, or several datasets with each other, or
score one generated set; the first two write a results directory (:mod:`rarity_score.results_dir`).

Three functions, each a short orchestration of the layers below: load the inputs in one feature
space (:mod:`rarity_score.sources`), build the k-NN manifolds
(:class:`~rarity_score.manifold.RealManifold`), write and publish the results
(:func:`rarity_score.results_dir.write_results`), build the report in the staging folder.

* :func:`compare`: the real manifold is built **once** and every generated set is scored
  against it (one sweep per set). The real set's own leave-one-out rarity is saved beside the
  scores as the reference curve of the histograms (``reference_loo.npz``).
* :func:`compare_datasets`: the paper's dataset comparison. Each dataset is scored against
  **its own** manifold with its own sphere left out (leave-one-out,
  :meth:`~rarity_score.manifold.RealManifold.leave_one_out`), all in one feature space; there is
  no real reference set, so precision, recall, density and coverage do not apply.
* :func:`score`: one generated set against one real set, kept in memory (``rarity score``);
  :meth:`Scored.save` writes it as a results directory.
* :func:`score_sets`: the scoring of :func:`compare` on inputs already loaded, kept in memory
  (:meth:`Comparison.save` writes it); ``rarity spaces`` (:mod:`rarity_score.spaces.run`)
  calls it once per feature space.

Scores are distances in the feature space: they are comparable only within one feature extractor,
one real reference set and one k. Every results directory records all three in ``run.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarity_score import defaults, sources, uncertainty
from rarity_score._validation import check_k
from rarity_score.io.atomic import is_machine_failure
from rarity_score.io.names import printable
from rarity_score.io.paths import check_not_an_input
from rarity_score.manifold import RealManifold
from rarity_score.options import EngineOptions, ExtractionOptions, StatisticsOptions
from rarity_score.results import Evaluation
from rarity_score.results_dir import OutputDir, RunResult, check_output_dir, write_results
from rarity_score.sources import InputSet, label
from rarity_score.uncertainty import Analysis, StabilityStep

__all__ = [
    "Comparison",
    "RunResult",
    "Scored",
    "check_output",
    "checked_statistics",
    "compare",
    "compare_datasets",
    "compare_entries",
    "score",
    "score_sets",
    "try_report",
]

logger = logging.getLogger(__name__)

#: How messages name the real set of a comparison.
_REAL = "the real set"


def compare(
    real: Any,
    fakes: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    k: int = defaults.K,
    metrics: Iterable[str] | None = None,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
    statistics: StatisticsOptions | None = None,
    report: bool = True,
    command: Sequence[str] | None = None,
) -> RunResult:
    """Score several generated sets against one real set and write a results directory.

    The real manifold is built once; each generated set is scored against it in one sweep
    (:meth:`~rarity_score.manifold.RealManifold.evaluate`), and the real set's own leave-one-out
    rarity is saved as ``reference_loo.npz``.

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
        extraction: how image inputs become features (:class:`~rarity_score.options.
            ExtractionOptions`; its extractor None: the one recorded in the feature files
            given, else the default, the paper's).
        engine: how the sweeps run (:class:`~rarity_score.options.EngineOptions`).
        statistics: bootstrap intervals, subsets, stability
            (:class:`~rarity_score.options.StatisticsOptions`; None: point values of every
            sample). The sets are compared pairwise in any case (:mod:`rarity_score.
            uncertainty`), with intervals when bootstrapped.
        report: build the report (``report/index.html``, ``histogram.png``) in the results
            directory; a missing optional dependency of the report leaves one warning and the
            results without it.
        command: the command line to record in ``run.json`` (the CLI passes its own).

    Returns:
        The :class:`~rarity_score.results_dir.RunResult`: the directory (``.path``), its
        ``run.json`` (``.run``), the summary rows (``.rows``) and the evaluations.

    Raises:
        ValueError: bad input, naming the set: an empty set, features of another dimension or
            feature space than the real set, duplicate names, an output folder that cannot be
            used. Nothing is written then.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> real = rng.normal(size=(200, 8))
        >>> fakes = {"wide": 1.5 * rng.normal(size=(50, 8)),
        ...          "narrow": 0.5 * rng.normal(size=(50, 8))}
        >>> result = compare(real, fakes, pathlib.Path(tempfile.mkdtemp()) / "run", k=3,
        ...                  report=False)
        >>> sorted(p.name for p in result.path.iterdir())
        ['reference_loo.npz', 'run.json', 'sets', 'summary.csv', 'summary.json', 'summary.md']
        >>> [row["name"] for row in result.rows], result.run["mode"]
        (['wide', 'narrow'], 'compare')
    """
    entries = compare_entries(real, fakes)
    target = check_output(out_dir, entries, extraction)
    statistics = checked_statistics(statistics)
    real_set, *sets = _subsets(sources.load_inputs(entries, extraction), statistics)
    compared = score_sets(
        real_set, sets, k=k, metrics=metrics, engine=engine, statistics=statistics
    )
    return compared.save(target, report=report, command=command)


def checked_statistics(statistics: StatisticsOptions | None) -> StatisticsOptions:
    """The statistics options of a run (the defaults for None), scipy checked before any work
    when they need it (``rarity spaces`` checks its own with it too)."""
    statistics = statistics or StatisticsOptions()
    if statistics.intervals:
        uncertainty.require_scipy()
    return statistics


def _subsets(sets: Sequence[InputSet], statistics: StatisticsOptions) -> list[InputSet]:
    """The loaded sets, each cut to ``statistics.subsample`` samples when asked."""
    if statistics.subsample is None:
        return list(sets)
    cut = [s.subset(statistics.subsample, statistics.seed) for s in sets]
    for s in cut:
        if s.subsampled_from is not None:
            logger.info(
                "scoring %d random samples of %r (of %d)",
                len(s.features),
                s.name,
                s.subsampled_from,
            )
    return cut


def analyse(
    named: Sequence[tuple[str, Evaluation]],
    statistics: StatisticsOptions,
    stability: Sequence[StabilityStep] | None = None,
    *,
    same_reference: bool = True,
) -> Analysis:
    """What a run adds to its evaluations (:class:`~rarity_score.uncertainty.Analysis`): the
    bootstrap intervals of each set's summary, the comparison of every pair of sets, the
    stability steps, and their record for ``run.json``. Comparisons need scipy: without it they
    are left out with a warning (unless intervals were asked, which checked it first)."""
    intervals = tuple(
        uncertainty.summary_intervals(evaluation, statistics) if statistics.intervals else None
        for _, evaluation in named
    )
    pairs: tuple[dict[str, Any], ...] = ()
    if len(named) > 1:
        try:
            found = uncertainty.comparisons(named, statistics, same_reference=same_reference)
            pairs = tuple(c.to_dict() for c in found)
        except ImportError as error:
            logger.warning("the sets are not compared (%s)", error)
    asked = sorted({name for _, evaluation in named for name in evaluation.metrics})
    return Analysis(
        intervals=intervals,
        comparisons=pairs,
        stability=None if stability is None else tuple(stability),
        record=uncertainty.statistics_record(statistics, asked),
    )


def compare_entries(real: Any, fakes: Mapping[str, Any]) -> list[sources.Entry]:
    """The ``(label, name, source)`` entries of a comparison (:func:`sources.load_inputs`):
    the real set first, then the generated sets, their names checked
    (:func:`sources.check_names`).

    >>> [where for where, _, _ in compare_entries("real/", {"psi=0.7": "fake/"})]
    ['the real set', "generated set 'psi=0.7'"]
    >>> compare_entries("real/", ["fake/"])
    Traceback (most recent call last):
    ...
    ValueError: fakes must be a mapping of generated set name -> images, not a list
    """
    if not isinstance(fakes, Mapping):
        raise ValueError(
            "fakes must be a mapping of generated set name -> images, not "
            f"{_article(type(fakes).__name__)}"
        )
    names = sources.check_names(fakes.keys(), "generated set")
    entries: list[sources.Entry] = [(_REAL, "real", real)]
    entries += [(label("generated set", name), name, fakes[name]) for name in names]
    return entries


def _article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def check_output(
    out_dir: str | os.PathLike[str],
    entries: Sequence[sources.Entry],
    extraction: ExtractionOptions | None,
    kind: str = "results",
) -> OutputDir:
    """:func:`~rarity_score.results_dir.check_output_dir` of a run that reads ``entries``
    with ``extraction``, of ``kind``: the output folder must not be, lie in or hold an input,
    nor be or hold the feature cache folder (filled while the run works: an output around it
    could not be published, nor replaced later without deleting the cache).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_output(folder, [], ExtractionOptions(cache_dir=folder / "cache"))
    Traceback (most recent call last):
    ...
    ValueError: the results directory ... holds the input .../cache (the feature cache); ...
    """
    target = check_output_dir(out_dir, [(where, source) for where, _, source in entries], kind=kind)
    cache = None if extraction is None else extraction.cache_dir
    if cache is not False:
        folder = defaults.cache_dir() if cache is None else cache
        check_not_an_input(
            target.path,
            [("the feature cache", folder)],
            "the results directory",
            folder=True,
            inside=False,
        )
    return target


@dataclass(frozen=True)
class Comparison:
    """Generated sets scored against one real set (:func:`score_sets`), kept in memory: the
    inputs as loaded, one evaluation per set, the real set's leave-one-out reference and k.
    :meth:`save` writes it as a results directory (mode ``"compare"``)."""

    real: InputSet
    sets: tuple[InputSet, ...]
    evaluations: tuple[Evaluation, ...]
    reference: Evaluation
    k: int
    #: The intervals, comparisons and stability steps (:func:`analyse`).
    analysis: Analysis | None = None

    def save(
        self,
        out_dir: OutputDir | str | os.PathLike[str],
        *,
        report: bool = True,
        command: Sequence[str] | None = None,
        announce: bool = True,
    ) -> RunResult:
        """Write the comparison as a results directory (and its report unless ``report`` is
        False), as :func:`compare` does; ``announce``: log where it went (see
        :func:`~rarity_score.results_dir.write_results`)."""
        return write_results(
            out_dir,
            mode="compare",
            k=self.k,
            sets=self.sets,
            evaluations=self.evaluations,
            real=self.real,
            reference=self.reference,
            command=command,
            report=_try_report if report else None,
            announce=announce,
            analysis=self.analysis,
        )


def score_sets(
    real: InputSet,
    sets: Sequence[InputSet],
    *,
    k: int = defaults.K,
    metrics: Iterable[str] | None = None,
    engine: EngineOptions | None = None,
    statistics: StatisticsOptions | None = None,
) -> Comparison:
    """Score loaded generated sets against a loaded real set: the body of :func:`compare`
    once its inputs are features (``rarity spaces`` calls it once per feature space). The real
    manifold is built once, each set is scored in one sweep, then the real set's own
    leave-one-out rarity is computed (the reference curve).

    >>> import numpy as np
    >>> from rarity_score.features.pipeline import load_or_extract
    >>> rng = np.random.default_rng(3)
    >>> real, fake = (InputSet.describe(name, a, load_or_extract(a)) for name, a in
    ...               (("real", rng.normal(size=(30, 4))), ("b", rng.normal(size=(10, 4)))))
    >>> compared = score_sets(real, [fake], k=3, metrics=["rarity"])
    >>> compared.k, compared.evaluations[0].n_fake, compared.reference.n_fake
    (3, 10, 30)
    """
    statistics = statistics or StatisticsOptions()
    manifold = _manifold(real, k, engine, _REAL)
    evaluations = _evaluate_all(manifold, sets, metrics)
    logger.info("leave-one-out rarity of the real set (the reference curve)")
    reference = manifold.leave_one_out()
    stability = _stability(real, sets, evaluations, manifold.k, metrics, engine, statistics)
    named = [(s.name, evaluation) for s, evaluation in zip(sets, evaluations, strict=True)]
    return Comparison(
        real=real,
        sets=tuple(sets),
        evaluations=tuple(evaluations),
        reference=reference,
        k=manifold.k,
        analysis=analyse(named, statistics, stability),
    )


def _evaluate_all(
    manifold: RealManifold, sets: Sequence[InputSet], metrics: Iterable[str] | None
) -> list[Evaluation]:
    evaluations = []
    for s in sets:
        logger.info("scoring %r (%d samples) against the real manifold", s.name, len(s.features))
        where = label("generated set", s.name)
        evaluations.append(
            manifold.evaluate(s.features.features, metrics=metrics, label=_named(where, s))
        )
    return evaluations


def _stability(
    real: InputSet,
    sets: Sequence[InputSet],
    evaluations: Sequence[Evaluation],
    k: int,
    metrics: Iterable[str] | None,
    engine: EngineOptions | None,
    statistics: StatisticsOptions,
) -> list[StabilityStep] | None:
    """``--stability`` of generated sets scored against ``real``: the sets scored again against
    each random part of the real set, then the run itself (fraction 1); None when not asked."""
    if not statistics.stability:
        return None
    steps = []
    for fraction, part in _parts(real, k, statistics):
        logger.info(
            "stability: %g %% of the real set (%d samples)", 100 * fraction, len(part.features)
        )
        smaller = _manifold(part, k, engine, _REAL)
        steps.append(StabilityStep(fraction, tuple(_evaluate_all(smaller, sets, metrics))))
    return [*steps, StabilityStep(1.0, tuple(evaluations))]


def _parts(s: InputSet, k: int, statistics: StatisticsOptions) -> list[tuple[float, InputSet]]:
    """The random parts of ``s`` that ``--stability`` scores against (the fractions below 1 of
    :data:`~rarity_score.defaults.STABILITY_FRACTIONS`); a part too small for k is left out,
    with a warning."""
    parts = []
    n = len(s.features)
    for fraction in defaults.STABILITY_FRACTIONS:
        if fraction >= 1:
            continue
        size = max(1, round(fraction * n))
        if size <= k:
            logger.warning(
                "stability: %g %% of %r is %d samples, too few for k=%d; left out",
                100 * fraction,
                s.name,
                size,
                k,
            )
            continue
        parts.append((fraction, s.subset(size, statistics.seed)))
    return parts


def compare_datasets(
    datasets: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    k: int = defaults.K,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
    statistics: StatisticsOptions | None = None,
    report: bool = True,
    command: Sequence[str] | None = None,
) -> RunResult:
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
        >>> result = compare_datasets(data, pathlib.Path(tempfile.mkdtemp()) / "ds", report=False)
        >>> rows = {row["name"]: row for row in result.rows}
        >>> rows["narrow"]["rarity_median"] < rows["wide"]["rarity_median"]
        True
        >>> rows["wide"]["precision"] is None
        True
    """
    names = sources.check_names(datasets.keys(), "dataset")
    entries = [(label("dataset", name), name, datasets[name]) for name in names]
    target = check_output(out_dir, entries, extraction)
    statistics = checked_statistics(statistics)
    sets = _subsets(sources.load_inputs(entries, extraction), statistics)
    for (where, _, _), s in zip(entries, sets, strict=True):  # all before the first sweep
        check_k(k, len(s.features), label=_named(where, s))
    warn_sizes([(s.name, len(s.features)) for s in sets])
    evaluations = []
    for (where, _, _), s in zip(entries, sets, strict=True):
        logger.info("leave-one-out rarity of %r (%d samples)", s.name, len(s.features))
        evaluations.append(_manifold(s, k, engine, where).leave_one_out())
    stability = None
    if statistics.stability:
        # Every set's parts are drawn first: a fraction some set is too small for is left out
        # (with _parts' warning) before any of its sweeps.
        parts = [dict(_parts(s, k, statistics)) for s in sets]
        fractions = sorted(set.intersection(*(set(found) for found in parts)))
        stability = []
        for fraction in fractions:
            found = []
            for (where, _, _), s, own in zip(entries, sets, parts, strict=True):
                logger.info(
                    "stability: leave-one-out rarity of %g %% of %r", 100 * fraction, s.name
                )
                found.append(_manifold(own[fraction], k, engine, where).leave_one_out())
            stability.append(StabilityStep(fraction, tuple(found)))
        stability.append(StabilityStep(1.0, tuple(evaluations)))
    named = [(s.name, evaluation) for s, evaluation in zip(sets, evaluations, strict=True)]
    return write_results(
        target,
        mode="datasets",
        k=int(k),
        sets=sets,
        evaluations=evaluations,
        command=command,
        report=_try_report if report else None,
        analysis=analyse(named, statistics, stability, same_reference=False),
    )


def warn_sizes(sizes: Sequence[tuple[str, int]]) -> None:
    """Warn when sets scored leave-one-out against themselves differ in size: k-NN radii shrink
    as a set grows, so their rarity values are comparable only at equal size
    (``--subsample N`` gives each the same)."""
    if len({n for _, n in sizes}) > 1:
        listed = ", ".join(f"{printable(name)} {n}" for name, n in sizes)
        smallest = min(n for _, n in sizes)
        logger.warning(
            "the datasets differ in size (%s): k-NN radii shrink as a set grows, so their "
            "rarity is comparable only at equal size; give --subsample %d to score %d samples "
            "of each",
            listed,
            smallest,
            smallest,
        )


@dataclass(frozen=True)
class Scored:
    """One generated set scored against one real set (:func:`score`): the evaluation, the two
    inputs as loaded, and the real manifold (for its leave-one-out reference curve)."""

    evaluation: Evaluation
    real: InputSet
    fake: InputSet
    manifold: RealManifold
    #: The intervals and stability steps (:func:`analyse`).
    analysis: Analysis | None = None

    def leave_one_out(self) -> Evaluation:
        """The real set's own leave-one-out rarity (one more sweep): the report's reference."""
        logger.info("leave-one-out rarity of the real set (the reference curve of the report)")
        return self.manifold.leave_one_out()

    def save(
        self,
        out_dir: OutputDir | str | os.PathLike[str],
        *,
        report: bool = True,
        command: Sequence[str] | None = None,
    ) -> RunResult:
        """Write the one generated set as a results directory (mode ``"score"``) with the real
        set's leave-one-out reference, and its report."""
        return write_results(
            out_dir,
            mode="score",
            k=self.manifold.k,
            real=self.real,
            sets=[self.fake],
            evaluations=[self.evaluation],
            reference=self.leave_one_out(),
            command=command,
            report=_try_report if report else None,
            analysis=self.analysis,
        )


def score(
    real: Any,
    fake: Any,
    *,
    k: int = defaults.K,
    metrics: Iterable[str] | None = None,
    extraction: ExtractionOptions | None = None,
    engine: EngineOptions | None = None,
    statistics: StatisticsOptions | None = None,
) -> Scored:
    """Score the generated set ``fake`` against ``real`` (images or features, as for
    :func:`compare`), in memory; nothing is written (see :meth:`Scored.save` and
    :func:`rarity_score.results_dir.score_record`).

    The generated set is named after its file or folder (``"generated"`` for arrays).

    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> scored = score(rng.normal(size=(60, 4)), rng.normal(size=(20, 4)), metrics=["rarity"])
    >>> scored.fake.name, scored.evaluation.n_fake, scored.real.kind
    ('generated', 20, 'features')
    """
    # Named as `rarity score` always named them: its two sides are features, whatever was given.
    entries = [("real features", "real", real), ("generated features", sources.name_of(fake), fake)]
    statistics = checked_statistics(statistics)
    real_set, fake_set = _subsets(sources.load_inputs(entries, extraction), statistics)
    manifold = _manifold(real_set, k, engine, entries[0][0])
    logger.info(
        "evaluating %d generated against %d real samples (dim %d, k=%d)",
        len(fake_set.features),
        manifold.n_real,
        manifold.dim,
        manifold.k,
    )
    evaluation = manifold.evaluate(
        fake_set.features.features, metrics=metrics, label=_named(entries[1][0], fake_set)
    )
    stability = _stability(
        real_set, [fake_set], [evaluation], manifold.k, metrics, engine, statistics
    )
    return Scored(
        evaluation=evaluation,
        real=real_set,
        fake=fake_set,
        manifold=manifold,
        analysis=analyse([(fake_set.name, evaluation)], statistics, stability),
    )


def _manifold(s: InputSet, k: int, engine: EngineOptions | None, where: str) -> RealManifold:
    """The k-NN manifold of ``s`` (which checks k against its size, naming the set)."""
    return RealManifold(s.features.features, k, engine=engine, label=_named(where, s))


def _named(where: str, s: InputSet) -> str:
    """How the engine's errors name a set (a row beyond float32's reach, say): with its source."""
    if s.subsampled_from is not None:  # its size is --subsample's, not the file's
        return f"{where} ({printable(s.source)}, cut to a random subset by --subsample)"
    return f"{where} ({printable(s.source)})"


def _try_report(folder: Path) -> None:
    """Build the report of the results directory in ``folder`` (:func:`try_report`)."""
    try_report(folder, _results_report)


def _results_report(folder: Path) -> None:
    from rarity_score.report import build_report

    build_report(folder)


def try_report(folder: Path, build: Callable[[Path], object]) -> None:
    """Build a report into ``folder`` (the staging folder of a run) with ``build(folder)``,
    which imports what it needs itself; a missing optional dependency or a failing report leaves
    one warning, the results are published without it (``rarity report DIR`` builds it later).
    A full disk or exhausted memory is the machine's failure: raised, the run fails.

    >>> def broken(folder):
    ...     raise ImportError("No module named 'matplotlib'")
    >>> try_report(Path("."), broken)  # logged: report not built (No module named ...)
    """
    try:
        build(folder)
    except ImportError as error:
        logger.warning("report not built (%s); the results are complete without it", error)
    except Exception as error:  # the results matter more than their presentation
        if is_machine_failure(error) or isinstance(error, MemoryError):
            raise
        logger.debug("report failure", exc_info=True)
        logger.warning(
            "the report could not be built (%s); the results are saved, rebuild it with "
            "`rarity report DIR`",
            error,
        )
