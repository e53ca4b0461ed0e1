"""Writing a results directory: the output folder checked once, every file written by one writer
into a staging folder, the list of files recorded, the folder published as a whole.

Replacing an earlier results directory
    ``run.json["files"]`` lists every file the run wrote, report included (relative path ->
    SHA-256 and size; :mod:`rarity_score.io.publish`). A folder at the output path is replaced
    only when it is empty or holds exactly such files, unchanged: checked before any work
    (:func:`check_output_dir`) and again, after it is moved aside, right before the swap; a
    folder with anything else in it (a note, a figure, an edited table, a ``run.json`` that
    merely claims the format, a results directory of a version that did not list its files) is
    refused, and nothing in it is deleted.

    Only an output of the same kind is replaced (``kind``, told by ``run.json["mode"]``):
    ``"results"`` (a results directory of ``rarity compare``, ``rarity datasets`` or
    ``rarity score --report``) or ``"spaces"`` (an output of ``rarity spaces``); a command
    never replaces what another kind of command wrote.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rarity_score._version import __version__
from rarity_score.io import publish
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.features import features_fingerprint
from rarity_score.io.images import is_results_dir
from rarity_score.io.names import csv_cell, csv_text, csv_value, printable, shorten, slugs
from rarity_score.io.npz import str_array, write_npz
from rarity_score.io.paths import check_not_an_input, check_parent_folder
from rarity_score.io.run_record import (
    FORMAT,
    FORMAT_VERSION,
    METHODS,
    SPACES_MODE,
    notes,
    read_json,
)
from rarity_score.results_dir.layout import (
    column_declarations,
    interval_cells,
    interval_columns,
    markdown,
    statistics_text,
    summary_columns,
    summary_row,
)

if TYPE_CHECKING:
    from rarity_score.metrics.base import Column
    from rarity_score.options import EngineOptions
    from rarity_score.results import Evaluation
    from rarity_score.sources import InputSet
    from rarity_score.uncertainty import Analysis

__all__ = [
    "KINDS",
    "OutputDir",
    "RunResult",
    "check_output_dir",
    "is_results_dir",
    "replaceable",
    "score_record",
    "stability_rows",
    "table_text",
    "write_results",
    "write_score_record",
    "write_table",
]

logger = logging.getLogger(__name__)

#: The file of a results directory that holds the list of the others (``run.json["files"]``).
_OWN = ("run.json",)

#: The kinds of output :func:`check_output_dir` tells apart: kind -> the ``run.json`` modes of
#: that kind. An output is replaced only by a run of its own kind.
KINDS: dict[str, tuple[str, ...]] = {"results": tuple(METHODS), "spaces": (SPACES_MODE,)}

#: How a refusal names each kind.
_KIND_WORDS = {"results": "a results directory", "spaces": "an output of rarity spaces"}


@dataclass(frozen=True)
class RunResult:
    """What a run wrote and computed: the results directory, its ``run.json`` (as written, with
    the list of files), the summary rows (one per set, as in ``summary.json``) and the
    evaluations, in the order of the sets, and what ``summary.json`` holds beside the rows
    (the comparisons of the sets, the stability steps). The command line prints from it;
    nothing is read back from disk."""

    path: Path
    run: dict[str, Any]
    rows: list[dict[str, Any]]
    evaluations: tuple[Evaluation, ...]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    stability: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class OutputDir:
    """An output folder :func:`check_output_dir` accepted: a run checks its output once, before
    any work, and hands this on to :func:`write_results`."""

    path: Path


def check_output_dir(
    out_dir: str | os.PathLike[str],
    inputs: Sequence[tuple[str, Any]] = (),
    *,
    kind: str | None = None,
) -> OutputDir:
    """Refuse, before any work, an output directory that cannot be used.

    Usable: a path that does not exist yet in a writable folder, an empty folder, or an earlier
    output of ``kind`` (see :data:`KINDS`; None: of any kind, for a caller that checks a folder
    another function writes) that holds exactly the files it lists in ``run.json["files"]``,
    unchanged (replaced at the end of the run), which is not, does not lie in and does not hold
    one of the ``(label, source)`` ``inputs`` (replacing it would delete the input, or the next
    run would read it as images). Raises ValueError otherwise, naming the folder and what it
    holds, or up to three of the files that are not the project's.

    First removes what runs killed while publishing left behind (only what the journal of
    :mod:`rarity_score.io.publish` proves to be theirs; an old results directory moved aside
    is put back in its place).
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind of output {kind!r}; expected one of {', '.join(KINDS)}")
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
            # Files that are not ours are named first; then an output of ours of another kind
            # is refused as such.
            manifest, mode = _recorded_files(target)
            foreign = publish.foreign_entries(target, manifest, own=_OWN)
            if foreign:
                raise ValueError(
                    f"cannot write results to {shown}: it holds files rarity-score did not "
                    f"write or that changed since ({publish.describe_foreign(foreign)}); move "
                    "them elsewhere or give a new folder"
                )
            _check_kind(target, mode, kind)
    check_parent_folder(target, f"results to {shown}")
    check_not_an_input(target, inputs, "the results directory", folder=True)
    # Not inside another output: replacing a part of it would leave its summary describing
    # files that are gone.
    for parent in target.absolute().parents:
        if is_results_dir(parent):
            raise ValueError(
                f"cannot write results to {shown}: it lies inside {printable(str(parent))}, an "
                "output of rarity-score, whose files are one unit; give a folder outside it"
            )
    return OutputDir(target)


def _holds(mode: Any) -> str:
    """What an output of ``mode`` is, in the words of a refusal."""
    if not isinstance(mode, str):  # a tampered run.json: any JSON value
        return f"an output of rarity-score of another kind (mode {shorten(printable(str(mode)))})"
    if mode == SPACES_MODE:
        return "an output of rarity spaces"
    if mode == "score":
        return "a results directory of rarity score --report"
    if mode in METHODS:
        return f"a results directory of rarity {mode}"
    return f"an output of rarity-score of another kind (mode {printable(str(mode))!r})"


def _recorded_files(target: Path) -> tuple[dict[str, dict[str, Any]], Any]:
    """The list of files an earlier run recorded in ``target/run.json``, and the run's mode
    (as written: untrusted); ValueError when the folder is not an output of rarity-score or one
    that does not list its files."""
    shown = printable(str(target))
    try:
        run = read_json(target / "run.json")
    except (OSError, ValueError):  # read_json gives one ValueError for any damaged file
        run = None
    if not (isinstance(run, dict) and run.get("format") == FORMAT):
        raise ValueError(
            f"cannot write results to {shown}: the folder is not empty and is not a results "
            "directory (no run.json of rarity-score); move its files elsewhere or give a new "
            "folder"
        )
    manifest = publish.read_manifest(run.get("files"))
    if manifest is None:
        raise ValueError(
            f"cannot write results to {shown}: its run.json does not list the files it holds "
            "(a results directory of an earlier rarity-score version, or an edited one), so "
            "they cannot be told apart from yours; delete it yourself or give a new folder"
        )
    return manifest, run.get("mode")


def _check_kind(target: Path, mode: Any, kind: str | None) -> None:
    """Refuse an earlier output of another kind than ``kind`` (None: any)."""
    if kind is not None and mode not in KINDS[kind]:
        raise ValueError(
            f"cannot write results to {printable(str(target))}: it holds {_holds(mode)}, not "
            f"{_KIND_WORDS[kind]}, and only the command that wrote a folder replaces it; give "
            "a new folder"
        )


def replaceable(target: Path, kind: str | None = None) -> dict[str, dict[str, Any]] | None:
    """What may be replaced at ``target`` right before the swap (None: nothing is there): the
    files an earlier output of ``kind`` lists; ValueError (as :func:`check_output_dir`) when
    the folder holds anything else."""
    if not (target.is_dir() and not target.is_symlink() and any(target.iterdir())):
        return None
    manifest, mode = _recorded_files(target)
    _check_kind(target, mode, kind)
    return manifest


# ---------------------------------------------------------------------- the writer


def write_results(
    out_dir: OutputDir | str | os.PathLike[str],
    *,
    mode: str,
    k: int,
    sets: Sequence[InputSet],
    evaluations: Sequence[Evaluation],
    real: InputSet | None = None,
    reference: Evaluation | None = None,
    command: Sequence[str] | None = None,
    report: Callable[[Path], None] | None = None,
    announce: bool = True,
    analysis: Analysis | None = None,
) -> RunResult:
    """Write computed evaluations as a results directory, atomically (a staging folder beside
    it, renamed into place when complete, the earlier results directory replaced).

    ``mode`` is ``"compare"`` or ``"score"`` (``real`` given; ``evaluations[i]`` of ``sets[i]``
    against it; ``reference`` its leave-one-out evaluation) or ``"datasets"`` (no ``real``; each
    evaluation is the set's own leave-one-out one). ``out_dir`` not yet checked is checked here
    (:func:`check_output_dir`). ``report(folder)`` runs in the staging folder once every other
    file is written (the report is published with the results or not at all). ``announce``:
    log where the results went (off for a results directory written inside another output's
    staging folder, whose path means nothing to the user). ``analysis``: the intervals,
    comparisons and stability steps of the run (:class:`~rarity_score.uncertainty.Analysis`),
    written into the rows, ``summary.json`` and ``run.json["statistics"]``.
    """
    if mode not in METHODS:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(METHODS)}")
    if (real is None) != (mode == "datasets"):
        raise ValueError(f"mode {mode!r} {'takes no' if real is not None else 'needs a'} real set")
    if len(sets) != len(evaluations):
        raise ValueError(f"{len(sets)} sets for {len(evaluations)} evaluations")
    from rarity_score.sources import check_names, label  # (the writer's callers loaded them)

    check_names([s.name for s in sets], "set")
    everything = ([real] if real is not None else []) + list(sets)
    if not isinstance(out_dir, OutputDir):
        given = [(label("set", s.name), s.source) for s in everything if os.path.isabs(s.source)]
        out_dir = check_output_dir(out_dir, given, kind="results")
    target = out_dir.path
    names = slugs([s.name for s in sets])
    run = _run_record(mode, k, sets, real, command, names)
    run["statistics"] = analysis.record if analysis is not None else None
    intervals = analysis.intervals if analysis is not None else (None,) * len(sets)
    rows = [
        summary_row(printable(s.name), ev, ci)
        for s, ev, ci in zip(sets, evaluations, intervals, strict=True)
    ]
    comparisons = [] if analysis is None else [_printable(c) for c in analysis.comparisons]
    stability = None if analysis is None else stability_rows(sets, analysis)

    def write(folder: Path) -> None:
        (folder / "sets").mkdir()
        for s, slug, evaluation in zip(sets, names, evaluations, strict=True):
            reference_names = s.features.names if real is None else real.features.names
            _write_set(folder, slug, s, evaluation, reference_names)
        if reference is not None and real is not None:
            write_npz(
                folder / "reference_loo.npz",
                **_arrays(reference, real.features.names, metrics=False),
            )
        _write_summary(folder, rows, run, comparisons, stability)
        atomic_write_text(folder / "run.json", json.dumps(run, indent=2, allow_nan=False) + "\n")
        if report is not None:
            report(folder)
        run["files"] = publish.record_files(folder, own=_OWN)

    publish.publish_folder(
        target,
        write,
        manifest=lambda: replaceable(target, "results"),
        own=_OWN,
        refuse="cannot write results to",
    )
    if announce:
        logger.info("wrote results to %s", printable(str(target)))
    return RunResult(
        path=target,
        run=run,
        rows=rows,
        evaluations=tuple(evaluations),
        comparisons=comparisons,
        stability=stability,
    )


def _printable(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A comparison as written: names and the sentence made printable (set names are the
    user's text)."""
    return {k: printable(v) if isinstance(v, str) else v for k, v in entry.items()}


def stability_rows(sets: Sequence[InputSet], analysis: Analysis) -> list[dict[str, Any]] | None:
    """``summary.json["stability"]``: per fraction of the reference set, the summary row of every
    set scored against it, with the reference's size (``n_reference``); None when not asked."""
    if analysis.stability is None:
        return None
    return [
        {
            "fraction": step.fraction,
            "sets": [
                {**summary_row(printable(s.name), ev), "n_reference": int(ev.n_real)}
                for s, ev in zip(sets, step.evaluations, strict=True)
            ],
        }
        for step in analysis.stability
    ]


def _input_entry(s: InputSet) -> dict[str, Any]:
    """A set's entry in ``run.json`` (without the per-set file names)."""
    features = s.features
    # Names and paths may hold bytes that are not UTF-8 (file names): written escaped.
    return {
        "name": printable(s.name),
        "source": printable(s.source),
        "kind": s.kind,
        "n": len(features),
        # --subsample: the size of the set before a random subset of it was scored.
        "subsampled_from": s.subsampled_from,
        "n_skipped": len(features.skipped),
        "skipped": [
            {"name": printable(str(n)), "reason": printable(str(r))} for n, r in features.skipped
        ],
        "has_images": s.has_images,
        "fingerprint": features_fingerprint(np.asarray(features.features)),
        # What the report checks before it opens any image of this source (io.run_record).
        "images_fingerprint": features.images_fingerprint or None,
    }


def _run_record(
    mode: str,
    k: int,
    sets: Sequence[InputSet],
    real: InputSet | None,
    command: Sequence[str] | None,
    names: Sequence[str] | None,
) -> dict[str, Any]:
    """``run.json`` (``names``: the sets' slugs, which name their files; None: no files)."""
    everything = ([real] if real is not None else []) + list(sets)
    named = next((s.features for s in everything if s.features.extractor), None)
    dim = everything[0].features.dim
    extractor = None
    if named is not None:
        extractor = {
            "name": named.extractor,
            "preprocessing": named.preprocessing,
            "weights_id": named.weights_id,
            "dim": dim,
        }
    entries = [_input_entry(s) for s in sets]
    for entry, slug in zip(entries, names or (), strict=False):
        entry.update(slug=slug, table=f"sets/{slug}.csv", arrays=f"sets/{slug}.npz")
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
        "real": None if real is None else _input_entry(real),
        "sets": entries,
        "reference_loo": "reference_loo.npz" if real is not None and names is not None else None,
        "notes": notes(leave_one_out=mode == "datasets" or real is not None),
    }


def _arrays(
    evaluation: Evaluation, names: Sequence[str], *, metrics: bool = True
) -> dict[str, np.ndarray]:
    """The ``.npz`` arrays of an evaluation: every column it computed (with its declared dtype;
    a metric that was not computed has none, never made-up values), the sample names and (for
    a set) the metrics asked for."""
    from rarity_score.metrics.base import DTYPES

    declared = column_declarations()
    arrays = {
        name: np.asarray(values, dtype=DTYPES[declared[name].kind]) if name in declared else values
        for name, values in evaluation.columns.items()
    }
    arrays["names"] = str_array([printable(str(name)) for name in names])
    if metrics:
        arrays["metrics"] = str_array(evaluation.metrics)
    return arrays


def _write_set(
    folder: Path, slug: str, s: InputSet, evaluation: Evaluation, reference_names: Sequence[str]
) -> None:
    names = s.features.names
    write_npz(folder / "sets" / f"{slug}.npz", **_arrays(evaluation, names))
    write_table(folder / "sets" / f"{slug}.csv", evaluation, names, reference_names)


def table_text(
    evaluation: Evaluation,
    names: Sequence[str] | None = None,
    reference_names: Sequence[str] | None = None,
) -> str:
    """The per-sample CSV table: ``index``, ``name`` (with ``names``), the evaluation's cells
    (:meth:`~rarity_score.results.Evaluation.per_sample_rows`), then, with ``reference_names``
    (the rows the ``"index"`` columns refer to), the companion name column of every declared
    index column (empty where the sample points at no row, or its metric was not computed).
    ``sets/<slug>.csv`` and ``rarity score --out`` are both this table."""
    companions = []
    if reference_names is not None:
        declared = column_declarations().values()
        companions = [c for c in declared if c.kind == "index" and c.names_column]
    header = ["index", *(["name"] if names is not None else []), *evaluation.per_sample_columns()]
    header += [str(column.names_column) for column in companions]
    rows = evaluation.per_sample_rows(names)
    if companions and reference_names is not None:
        rows = _with_names(rows, evaluation, companions, reference_names)
    return csv_text(header, rows)


def _with_names(
    rows: Iterator[dict[str, str]],
    evaluation: Evaluation,
    companions: Sequence[Column],
    reference_names: Sequence[str],
) -> Iterator[dict[str, str]]:
    inside = np.asarray(evaluation.columns["in_manifold"], dtype=bool)
    for i, row in enumerate(rows):
        for column in companions:
            values = evaluation.columns.get(column.name)
            index = -1 if values is None else int(values[i])
            if column.only_in_manifold and not inside[i]:
                index = -1
            name = csv_cell(str(reference_names[index])) if index >= 0 else ""
            row[str(column.names_column)] = name
        yield row


def write_table(
    path: str | os.PathLike[str],
    evaluation: Evaluation,
    names: Sequence[str] | None = None,
    reference_names: Sequence[str] | None = None,
) -> Path:
    """Write :func:`table_text` to ``path`` atomically; return the path."""
    return atomic_write_text(path, table_text(evaluation, names, reference_names))


def _write_summary(
    folder: Path,
    rows: list[dict[str, Any]],
    run: Mapping[str, Any],
    comparisons: list[dict[str, Any]],
    stability: list[dict[str, Any]] | None,
) -> None:
    """``summary.csv`` (the rows, their intervals as ``<key>_ci_low`` / ``_high`` columns),
    ``summary.json`` (``{"sets": rows, "comparisons": [...], "stability": [...] or null}``) and
    ``summary.md``."""
    columns = (*summary_columns(), *interval_columns(rows))
    flat = ({**row, **interval_cells(row)} for row in rows)
    cells = ({key: csv_value(row.get(key)) for key in columns} for row in flat)
    atomic_write_text(folder / "summary.csv", csv_text(columns, cells))
    summary = {"sets": rows, "comparisons": comparisons, "stability": stability}
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    atomic_write_text(folder / "summary.json", text)
    extra = statistics_text(run, comparisons, stability)
    atomic_write_text(
        folder / "summary.md",
        markdown(rows, run) + (f"\n```\n{extra.rstrip()}\n```\n" if extra else ""),
    )


# ---------------------------------------------------------------------- rarity score --json


def score_record(
    evaluation: Evaluation,
    real: InputSet,
    fake: InputSet,
    *,
    engine: EngineOptions | None = None,
    command: Sequence[str] | None = None,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The JSON of ``rarity score --json``: the evaluation's record
    (:meth:`~rarity_score.results.Evaluation.to_dict`, without the per-sample lists) and, in the
    spelling of ``run.json`` and ``summary.json``, the run's fields (``mode`` ``"score"``,
    ``method``, ``command``, ``k``, ``dim``, ``extractor`` as ``{name, preprocessing, weights_id,
    dim}``, ``real``, ``sets``) and the set's summary row (``rows``).

    ``settings`` also keeps the names earlier versions wrote (``feature_extractor``,
    ``extractor_preprocessing``, ``extractor_weights_id``, ``real_features``, ...), so that
    their readers keep working.
    """
    from rarity_score.features.space import describe_space

    run = _run_record("score", evaluation.k, [fake], real, command, None)
    for key in ("reference_loo", "format", "format_version"):
        del run[key]  # no results directory: no files, and the JSON has its own format
    r, f = real.features, fake.features
    settings: dict[str, Any] = {
        "feature_extractor": (run["extractor"] or {}).get("name"),
        # As typed (run.json's real.source is the absolute path), as earlier versions wrote.
        "real_features": real.source if real.given is None else real.given,
        "fake_features": fake.source if fake.given is None else fake.given,
    }
    # One space (checked when loaded): a value recorded by either side is the space's.
    for key, value in (
        ("extractor_preprocessing", r.preprocessing or f.preprocessing),
        ("extractor_weights_id", r.weights_id or f.weights_id),
    ):
        if value:
            settings[key] = value
    # What each side records of its space (null: not recorded, e.g. a plain .npy file).
    settings["real_space"] = describe_space(r)
    settings["fake_space"] = describe_space(f)
    for side, features in (("real", r), ("fake", f)):
        if features.skipped:
            settings[f"{side}_skipped"] = [
                {"name": name, "reason": reason} for name, reason in features.skipped
            ]
    settings["real_fingerprint"] = run["real"]["fingerprint"]
    settings["fake_fingerprint"] = run["sets"][0]["fingerprint"]
    if engine is not None:
        settings["requested_backend"] = engine.backend
        if engine.device is not None:
            settings["requested_device"] = engine.device
    record = evaluation.to_dict(per_sample=False, extra=settings)
    del run["notes"]  # the evaluation's own explain the JSON (their comparability note is run's)
    record.update(run)
    intervals = analysis.intervals[0] if analysis is not None and analysis.intervals else None
    record["rows"] = [summary_row(printable(fake.name), evaluation, intervals)]
    # With --bootstrap / --stability: what was resampled, the intervals of the whole summary
    # (the shape of "summary"), the stability steps.
    record["statistics"] = analysis.record if analysis is not None else None
    record["summary_ci"] = intervals
    record["stability"] = None if analysis is None else stability_rows([fake], analysis)
    return record


def write_score_record(
    path: str | os.PathLike[str],
    evaluation: Evaluation,
    real: InputSet,
    fake: InputSet,
    *,
    engine: EngineOptions | None = None,
    command: Sequence[str] | None = None,
    analysis: Analysis | None = None,
) -> Path:
    """Write :func:`score_record` as strict JSON (missing values null) to ``path`` atomically."""
    record = score_record(evaluation, real, fake, engine=engine, command=command, analysis=analysis)
    return atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
