"""The report's place in the folder it is built into, shared by both reports: what a rebuild may
replace (``report/``, and the files given as ``beside`` it, such as a results directory's
``histogram.png``), and the swap of a new ``report/`` into place.

A rebuild replaces only what ``run.json["files"]`` lists, unchanged; a user's file there is never
deleted, and the refusal comes before any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rarity_score.io import publish
from rarity_score.io.atomic import is_machine_failure, write_error
from rarity_score.report.load import ReportError

__all__ = ["check_replaceable", "publish_report"]

_PREFIX = "report/"


def check_replaceable(
    root: Path, run: Mapping[str, Any], *, beside: tuple[str, ...] = (), unlisted: str = ""
) -> dict[str, Any] | None:
    """Refuse (ReportError) to replace a ``report/`` or a file of ``beside`` that holds anything
    the package did not write there; return the files ``run`` lists (None: none listed).

    ``unlisted`` is put after "run.json lists no files" in that refusal: why it may list none.
    """
    manifest = publish.read_manifest(run.get("files"))
    report = root / "report"
    if report.is_symlink() or (os.path.lexists(report) and not report.is_dir()):
        raise ReportError(
            f"cannot rebuild the report in {root}: report is not a folder rarity-score wrote "
            "(a file or a link); move it away and run again"
        )
    if not any(os.path.lexists(root / name) for name in ("report", *beside)):
        return manifest
    if manifest is None:
        names = " and ".join(("report/", *beside))
        raise ReportError(
            f"cannot rebuild the report in {root}: run.json lists no files{unlisted}, so "
            f"{names} cannot be told from files of yours; move {'them' if beside else 'it'} "
            "away and run again"
        )
    foreign = [
        rel
        for rel in publish.foreign_entries(root, manifest, own=("run.json",))
        if _is_report_file(rel, beside)
    ]
    if foreign:
        raise ReportError(
            f"cannot rebuild the report in {root}: rarity-score did not write "
            f"{publish.describe_foreign(foreign)} (or it changed since); move it away and run again"
        )
    return manifest


def publish_report(
    root: Path,
    write: Callable[[Path], None],
    manifest: dict[str, Any] | None,
    *,
    beside: tuple[str, ...] = (),
    then: Callable[[], object] | None = None,
) -> Path:
    """Build ``report/`` in a staging folder with ``write`` and swap it in, then run ``then``
    (what is written beside it) and list the report's files anew in ``run.json``; return the
    page. ``manifest`` is what :func:`check_replaceable` returned.

    Raises:
        ReportError: the report cannot be written into ``root``.
        OSError (:func:`~rarity_score.io.atomic.write_error`; StorageFullError for a full
            disk): the machine failed, not the input.
    """
    # Built in a journaled staging folder (a killed rebuild leaves nothing the next run does not
    # clean) and swapped in whole; the old report/ is deleted only file by file as verified.
    try:
        publish.publish_folder(
            root / "report",
            write,
            manifest=lambda: _report_part(manifest),
            refuse="cannot rebuild the report in",
        )
        # Only once report/ is in place: a refused or killed swap leaves the old files beside
        # it, which run.json["files"] still lists (a changed one would lock the folder).
        if then is not None:
            then()
        # The old report's entries replaced, the others kept as listed.
        publish.record_files(root, part=lambda rel: _is_report_file(rel, beside))
    except OSError as error:
        if is_machine_failure(error):  # the machine, not the input (exit 1)
            raise write_error(root / "report", error) from error
        raise ReportError(f"cannot write the report into {root}: {error}") from error
    return root / "report" / "index.html"


def _report_part(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """The entries of ``manifest`` under ``report/``, relative to that folder."""
    if manifest is None:
        return None
    return {
        rel[len(_PREFIX) :]: entry for rel, entry in manifest.items() if rel.startswith(_PREFIX)
    }


def _is_report_file(rel: str, beside: tuple[str, ...]) -> bool:
    return rel in beside or rel.startswith(_PREFIX)
