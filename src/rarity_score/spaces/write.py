"""The writer of a spaces output (the layout: :mod:`rarity_score.spaces.output`).

:func:`write_spaces_files` fills a staging folder that :func:`publish_spaces` publishes whole,
as a results directory is (:func:`rarity_score.io.publish.publish_folder`; an earlier output of
``rarity spaces`` is replaced only when it holds exactly the files its ``run.json`` lists, and
nothing another command wrote is ever replaced: :func:`rarity_score.results_dir.write.
check_output_dir` with ``kind="spaces"``). :func:`write_spaces` does both for spaces that are
already results directories.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rarity_score._version import __version__
from rarity_score.io import publish
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.names import csv_text, csv_value, printable, slugs
from rarity_score.io.npz import str_array, write_npz
from rarity_score.io.run_record import FORMAT, FORMAT_VERSION, SPACES_MODE
from rarity_score.results_dir.read import Results
from rarity_score.results_dir.write import OutputDir, check_output_dir, replaceable
from rarity_score.spaces.agreement import FRACTION, ROW_KEYS, agreement_rows
from rarity_score.spaces.match import Aligned, real_count, subsampled_from
from rarity_score.spaces.text import METHOD, NOTES, markdown

__all__ = [
    "SpacesWritten",
    "publish_spaces",
    "space_record",
    "summary_rows",
    "write_spaces",
    "write_spaces_files",
]

logger = logging.getLogger(__name__)

_OWN = ("run.json",)  # the file that lists the others
_KIND = "spaces"  # what check_output_dir replaces: only an earlier output of rarity spaces


def space_record(
    name: str, results: Results, *, slug: str, results_path: str | None = None
) -> dict[str, Any]:
    """A space's entry of ``run.json["spaces"]``, from its loaded results directory.

    ``results_path``: how ``run.json`` names the directory (``"spaces/<slug>"`` inside the
    output; None: its absolute path).
    """
    run = results.run
    extractor = run.get("extractor") or {}
    real = run.get("real") or {}
    return {
        "name": printable(name),
        "slug": slug,
        "results": results_path
        if results_path is not None
        else printable(os.path.abspath(results.root)),
        "mode": run.get("mode"),
        "extractor": extractor.get("name") or None,
        "preprocessing": extractor.get("preprocessing") or None,
        "weights_id": extractor.get("weights_id") or None,
        "dim": run.get("dim"),
        "k": run.get("k"),
        "n_real": real_count(results),
        # --subsample: the size of the real set before the random subset scored (None: whole).
        "n_real_subsampled_from": subsampled_from(results),
        # --bootstrap: the intervals its results directory holds (None: none).
        "bootstrap": _bootstrap(run),
        "real": {
            key: real.get(key) for key in ("source", "kind", "images_fingerprint", "fingerprint")
        }
        if real
        else None,
    }


def _bootstrap(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"resamples", "level"}`` of the bootstrap intervals a results directory holds."""
    statistics = run.get("statistics")
    bootstrap = statistics.get("bootstrap") if isinstance(statistics, dict) else None
    if not isinstance(bootstrap, dict):
        return None
    resamples, level = bootstrap.get("resamples"), bootstrap.get("level")
    if not isinstance(resamples, int) or isinstance(resamples, bool):
        return None
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        return None
    return {"resamples": int(resamples), "level": float(level)}


def _set_subsampled_from(aligned: Aligned, name: str) -> int | None:
    """The size of a set before the random subset of it scored, as the first space whose
    ``run.json`` records one says (None: scored whole)."""
    for results in aligned.results:
        for entry in results.run.get("sets") or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                value = entry.get("subsampled_from")
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
    return None


def summary_rows(aligned: Aligned, *, fraction: float = FRACTION) -> list[dict[str, Any]]:
    """The rows of ``summary.json``: per set, one per pair of spaces (run order)."""
    names = [printable(space) for space in aligned.spaces]
    return [
        row
        for item in aligned.sets
        for row in agreement_rows(printable(item.name), names, item.rarity, fraction=fraction)
    ]


def _run_record(
    aligned: Aligned,
    spaces: Sequence[Mapping[str, Any]],
    set_slugs: Sequence[str],
    *,
    k: int | None,
    command: Sequence[str] | None,
    fraction: float,
    warnings: Sequence[str],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mode": SPACES_MODE,
        "method": METHOD,
        "command": None if command is None else [printable(str(part)) for part in command],
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "k": None if k is None else int(k),
        "fraction": float(fraction),
        "spaces": [dict(entry) for entry in spaces],
        "sets": [
            {
                "name": printable(item.name),
                "slug": slug,
                "n": item.n,
                "subsampled_from": _set_subsampled_from(aligned, item.name),
                "matched_by": item.matched_by,
                "same_images": item.same_images,
                "source": None if item.source is None else printable(item.source),
                "kind": item.kind,
                "images_fingerprint": item.images_fingerprint,
            }
            for item, slug in zip(aligned.sets, set_slugs, strict=True)
        ],
        "left_out": [
            {"name": printable(name), "missing_in": [printable(s) for s in lacking]}
            for name, lacking in aligned.left_out.items()
        ],
        "real_matched_by": aligned.real_matched_by,
        "real_same_images": aligned.real_same_images,
        # What the output must show: reference sizes or k that differ between the spaces.
        "warnings": [printable(text) for text in dict.fromkeys([*aligned.warnings, *warnings])],
        "notes": dict(NOTES),
    }


@dataclass(frozen=True)
class SpacesWritten:
    """What the writer wrote: the folder, its ``run.json`` (with the list of files once
    published) and the summary rows."""

    path: Path
    run: dict[str, Any]
    rows: list[dict[str, Any]]


def _set_table(item: Any, spaces: Sequence[str]) -> str:
    header = ["name"]
    for space in spaces:
        header += [f"rarity[{space}]", f"percentile[{space}]"]
    rows = []
    for i, name in enumerate(item.names):
        row = {"name": csv_value(str(name))}
        for s, space in enumerate(spaces):
            row[f"rarity[{space}]"] = csv_value(float(item.rarity[i, s]))
            row[f"percentile[{space}]"] = csv_value(float(item.percentile[i, s]))
        rows.append(row)
    return csv_text(header, rows)


def write_spaces_files(
    folder: str | os.PathLike[str],
    aligned: Aligned,
    spaces: Sequence[Mapping[str, Any]],
    *,
    k: int | None,
    command: Sequence[str] | None = None,
    fraction: float = FRACTION,
    warnings: Sequence[str] = (),
) -> SpacesWritten:
    """Write ``run.json`` (without the list of files), the summary files and ``sets/`` into
    ``folder`` (a staging folder: see :func:`publish_spaces`). ``spaces`` are the entries of
    :func:`space_record`, one per space of ``aligned``, in its order. ``warnings``: one line
    each, kept in ``run.json["warnings"]`` after those of ``aligned`` and shown wherever the
    output is (printed, ``summary.md``, the report)."""
    if len(spaces) != len(aligned.spaces):
        raise ValueError(f"{len(spaces)} space records for {len(aligned.spaces)} spaces")
    root = Path(folder)
    names = [printable(space) for space in aligned.spaces]
    set_slugs = slugs([item.name for item in aligned.sets])
    run = _run_record(
        aligned, spaces, set_slugs, k=k, command=command, fraction=fraction, warnings=warnings
    )
    rows = summary_rows(aligned, fraction=fraction)
    (root / "sets").mkdir(exist_ok=True)
    for item, slug in zip(aligned.sets, set_slugs, strict=True):
        write_npz(
            root / "sets" / f"{slug}.npz",
            names=str_array(item.names),
            spaces=str_array(names),
            rarity=np.asarray(item.rarity, dtype=np.float64),
            percentile=np.asarray(item.percentile, dtype=np.float64),
            in_manifold=np.asarray(item.in_manifold, dtype=bool),
            nearest_real_index=np.asarray(item.nearest_real_index, dtype=np.int64),
        )
        atomic_write_text(root / "sets" / f"{slug}.csv", _set_table(item, names))
    cells = ({key: csv_value(row.get(key)) for key in ROW_KEYS} for row in rows)
    atomic_write_text(root / "summary.csv", csv_text(ROW_KEYS, cells))
    atomic_write_text(root / "summary.json", json.dumps(rows, indent=2, allow_nan=False) + "\n")
    atomic_write_text(root / "summary.md", markdown(rows, run))
    atomic_write_text(root / "run.json", json.dumps(run, indent=2, allow_nan=False) + "\n")
    return SpacesWritten(path=root, run=run, rows=rows)


def publish_spaces(
    out_dir: OutputDir | str | os.PathLike[str],
    fill: Callable[[Path], SpacesWritten],
    *,
    inputs: Sequence[tuple[str, Any]] = (),
) -> SpacesWritten:
    """Publish a spaces output as a whole: ``fill(staging)`` writes everything into a staging
    folder beside ``out_dir`` (per-space results directories, :func:`write_spaces_files`, the
    report) and returns what :func:`write_spaces_files` returned; the list of files is then
    recorded in ``run.json`` and the folder replaces ``out_dir``. ``out_dir`` not yet checked
    is checked here (:func:`~rarity_score.results_dir.check_output_dir` with ``inputs``, of
    kind ``"spaces"``)."""
    if not isinstance(out_dir, OutputDir):
        out_dir = check_output_dir(out_dir, inputs, kind=_KIND)
    target = out_dir.path
    done: list[SpacesWritten] = []

    def write(folder: Path) -> None:
        written = fill(folder)
        files = publish.record_files(folder, own=_OWN)
        done.append(replace(written, run={**written.run, "files": files}))

    publish.publish_folder(
        target,
        write,
        manifest=lambda: replaceable(target, _KIND),
        own=_OWN,
        refuse="cannot write results to",
    )
    logger.info("wrote the comparison of feature spaces to %s", printable(str(target)))
    return replace(done[0], path=target)


def write_spaces(
    out_dir: OutputDir | str | os.PathLike[str],
    aligned: Aligned,
    spaces: Sequence[Mapping[str, Any]],
    *,
    k: int | None,
    command: Sequence[str] | None = None,
    fraction: float = FRACTION,
    report: Callable[[Path], None] | None = None,
    warnings: Sequence[str] = (),
) -> SpacesWritten:
    """Write the spaces output of ``aligned`` (spaces that are results directories elsewhere)
    to ``out_dir`` atomically; ``report(folder)`` runs in the staging folder last. ``out_dir``
    not yet checked is checked here, and must not be, lie in or hold one of the results
    directories compared. ``warnings``: as for :func:`write_spaces_files`.

    >>> import numpy as np, tempfile, pathlib
    >>> from rarity_score.compare import compare
    >>> from rarity_score.results_dir import load_results
    >>> from rarity_score.spaces.match import align
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(60, 3)), rng.normal(size=(30, 3))
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a = load_results(compare(real, {"s": fake}, folder / "a", report=False).path)
    >>> b = load_results(compare(real[:, ::-1], {"s": fake[:, ::-1]}, folder / "b",
    ...                          report=False).path)
    >>> aligned = align([("A", a), ("B", b)])
    >>> records = [space_record("A", a, slug="A"), space_record("B", b, slug="B")]
    >>> written = write_spaces(folder / "out", aligned, records, k=3)
    >>> sorted(p.name for p in written.path.iterdir())
    ['run.json', 'sets', 'summary.csv', 'summary.json', 'summary.md']
    >>> row = written.rows[0]
    >>> row["spearman"], row["kappa"], row["jaccard_rarest"]
    (1.0, 1.0, 1.0)
    """
    inputs = [
        (f"the results directory of space {name!r}", os.path.abspath(results.root))
        for name, results in zip(aligned.spaces, aligned.results, strict=True)
    ]

    def fill(folder: Path) -> SpacesWritten:
        written = write_spaces_files(
            folder, aligned, spaces, k=k, command=command, fraction=fraction, warnings=warnings
        )
        if report is not None:
            report(folder)
        return written

    return publish_spaces(out_dir, fill, inputs=inputs)
