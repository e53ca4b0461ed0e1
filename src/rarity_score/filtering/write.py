"""Writing a selection: its images into a folder (copies or symbolic links of the originals), or
its list as one CSV file (``rarity filter --to DIR`` / ``--list FILE``).

The images are read only from the source the run recorded, verified against the run's
fingerprint (:func:`rarity_score.io.recorded.open_recorded`, as the report's thumbnails); each
file is checked again (size and modification time) as it is copied or linked
(:meth:`~rarity_score.io.images.ImageCollection.read_bytes`,
:meth:`~rarity_score.io.images.ImageCollection.check_file`). The outputs never replace what the
project did not write: see :mod:`rarity_score.filtering` for the rules.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rarity_score._version import __version__
from rarity_score.filtering.names import file_names
from rarity_score.filtering.rules import Selection
from rarity_score.io import publish
from rarity_score.io.atomic import atomic_write_text
from rarity_score.io.images import ImageCollection, ImageInputError, UnreadableImage, open_images
from rarity_score.io.names import csv_cell, csv_text, csv_value, printable, shorten
from rarity_score.io.paths import (
    Labelled,
    check_not_an_input,
    check_output_file,
    check_parent_folder,
)
from rarity_score.io.recorded import ImageOrigin, RecordedImages, open_recorded
from rarity_score.io.run_record import IMAGE_KINDS, read_json

__all__ = ["FORMAT", "FORMAT_VERSION", "check_earlier_output", "write_list", "write_selection"]

logger = logging.getLogger(__name__)

#: ``filter.json["format"]``: what marks a folder as an output of ``rarity filter``.
FORMAT = "rarity-score/filter"
FORMAT_VERSION = 1

#: The file of an output folder that lists the others (never itself listed).
_RECORD = "filter.json"
_TABLE = "selection.csv"
#: A ``filter.json`` larger than this is not an output of ours (it lists a few files a sample).
_MAX_RECORD_BYTES = 256 * 2**20

_RESULTS = "the results directory"
#: Why no output may lie in the results directory (the default reason, that the next run would
#: read it as input, is not the true one there).
_REASONS = {
    _RESULTS: (
        "a later run replaces a results directory only while it holds nothing but its own files"
    )
}


# ---------------------------------------------------------------------- the table


def _header(selection: Selection, files: bool) -> list[str]:
    """``path, name``, the score the samples were ordered by, under its own name (none for the
    row order), ``rank``, and ``file`` in an output folder."""
    score = [] if selection.score_name == "row" else [selection.score_name]
    return ["path", "name", *score, "rank", *(["file"] if files else [])]


def _table(selection: Selection, paths: Sequence[str], files: Sequence[str] | None) -> str:
    header = _header(selection, files is not None)
    rows = []
    for position, s in enumerate(selection.rows):
        row = {"path": csv_cell(paths[position]), "name": csv_cell(s.name), "rank": str(s.rank)}
        if selection.score_name != "row":
            row[selection.score_name] = csv_value(s.score)
        if files is not None:
            row["file"] = csv_cell(files[position])
        rows.append(row)
    return csv_text(header, rows)


# ---------------------------------------------------------------------- the source


def _set_label(selection: Selection, name: str) -> str:
    what = "dataset" if selection.results.datasets_mode else "generated set"
    return f"{what} {shorten(name)!r}"


def _open_source(selection: Selection) -> RecordedImages | None:
    """The verified source of the selected set (None: a set without image files)."""
    if selection.missing_images() is not None:
        return None
    item = selection.item
    origin = ImageOrigin(item.source or "", item.kind, item.images_fingerprint)
    return open_recorded(origin, f"set {shorten(item.name)!r}")


def _positions(selection: Selection, recorded: RecordedImages) -> list[int]:
    """Where each selected sample lies in the source; a name the source lacks is refused,
    naming the results file that disagrees with the source."""
    item = selection.item
    out = []
    for s in selection.rows:
        position = recorded.find(s.name)
        if position is None:
            arrays = item.source_file or Path(selection.results.root) / "sets" / f"{item.slug}.npz"
            raise ValueError(
                f"sample {shorten(s.name)!r} of {printable(str(arrays))} is not an image of "
                f"{printable(item.source or '')} (no image there has that name, or two print "
                "alike): the results and their source disagree; score the images again"
            )
        out.append(position)
    return out


def _shown(collection: ImageCollection, position: int) -> str:
    """Where image ``position`` lies, as ``selection.csv`` names it: the file, or
    ``ARCHIVE:MEMBER``."""
    path = collection.path(position)
    if path is not None:
        return printable(path)
    return f"{printable(collection.source)}:{printable(collection[position].name)}"


# ---------------------------------------------------------------------- what outputs must not touch


def _inputs(selection: Selection) -> list[tuple[str, Any]]:
    """What an output must not be, lie in or hold: the results directory and every image source
    the run recorded (the listed images of a list file: :func:`_listed_images`)."""
    results = selection.results
    out: list[tuple[str, Any]] = [(_RESULTS, os.path.abspath(results.root))]
    for label, source, kind in _sources(selection):
        if kind in IMAGE_KINDS:
            out.append((label, source))
    return out


def _sources(selection: Selection) -> list[tuple[str, str, Any]]:
    """``(label, recorded source, kind)`` of the real set and every set that records a source."""
    results = selection.results
    found: list[tuple[str, str, Any]] = []
    real = results.run.get("real")
    if isinstance(real, dict) and isinstance(real.get("source"), str) and real["source"]:
        found.append(("the real set", real["source"], real.get("kind")))
    for item in results.sets:
        if item.source:
            found.append((_set_label(selection, item.name), item.source, item.kind))
    return found


def _listed_images(selection: Selection, recorded: RecordedImages | None) -> Labelled:
    """The image files the list-file sources of the run name (an output folder holding one
    would delete it when replaced); the selected set's from its verified source."""
    out: list[tuple[str, Any]] = []
    for label, source, kind in _sources(selection):
        if kind != "list":
            continue
        selected = recorded is not None and source == selection.item.source
        collection = recorded.collection if selected and recorded is not None else None
        opened = collection is None
        if collection is None:
            try:
                collection = open_images(source)
            except (ImageInputError, OSError) as error:
                # Gone or broken: it no longer lists anything an output could delete.
                logger.debug("not checked against the images %s lists (%s)", source, error)
                continue
        try:
            for position in range(len(collection)):
                path = collection.path(position)
                if path is not None:
                    out.append((f"an image listed by {label}", path))
        finally:
            if opened:
                collection.close()
    return out


# ---------------------------------------------------------------------- the list


def _named(path: str | os.PathLike[str], option: str, what: str) -> Path:
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{option} needs a {what} name (it was given an empty one)")
    return Path(text)


def write_list(
    selection: Selection, path: str | os.PathLike[str], *, option: str = "the list file"
) -> Path:
    """Write the selection as one CSV file and return its path: ``path, name``, the score (the
    column named as :attr:`~rarity_score.filtering.Selection.score_name`; none for the row
    order), ``rank``; ``path`` is where the image lies (the file, ``ARCHIVE:MEMBER`` for an
    archive member, empty for a set without image files). The image source is checked as for
    :func:`write_selection` (the paths are those of the images the run scored), but no image
    is read.

    Refused (ValueError naming ``option``, as the command line's ``--list``): an existing
    ``path`` (never overwritten, nor one created there meanwhile), a path in the results
    directory or in an image folder of the run, or one of its image files. The file is
    written in a staging folder and linked into place: an interrupted run leaves nothing.
    """
    target = _named(path, option, "file")
    shown = printable(str(target))
    check_not_an_input(target, _inputs(selection), option, inside=True, reasons=_REASONS)
    check_output_file(target, option)
    if os.path.lexists(target):
        raise ValueError(f"{option} {shown} exists: give a new file name (it is never replaced)")
    publish.clean_stale()
    paths = ["" for _ in selection.rows]
    recorded = _open_source(selection)
    try:
        check_not_an_input(target, _listed_images(selection, recorded), option)
        if recorded is not None:
            collection = recorded.collection
            paths = [_shown(collection, p) for p in _positions(selection, recorded)]
    finally:
        if recorded is not None:
            recorded.close()
    try:
        publish.publish_file(target, _table(selection, paths, None).encode("utf-8"))
    except FileExistsError as error:
        raise ValueError(
            f"{option} {shown} exists: give a new file name (it is never replaced)"
        ) from error
    logger.info("wrote %s", shown)
    return target


# ---------------------------------------------------------------------- the folder


def write_selection(
    selection: Selection,
    to: str | os.PathLike[str],
    *,
    how: str = "copy",
    option: str = "the output folder",
) -> Path:
    """Write the selected images into the folder ``to``, in rank order, and return its path.

    ``how``: ``"copy"`` (the original bytes) or ``"link"`` (symbolic links to the original
    files; not for archive members). The folder holds ``NNN_<base name>`` files,
    ``selection.csv`` (``path, name``, the score, ``rank, file``) and ``filter.json``. A set
    without image files (features, images held in memory, paths the run did not record) gets
    ``selection.csv`` and ``filter.json`` only, with a warning (``how="link"`` is refused: no
    link can be made). Written into a staging folder and renamed into place; an earlier output
    of ``rarity filter`` there is replaced when it holds exactly what its ``filter.json``
    lists, anything else refused (see :mod:`rarity_score.filtering`). Every refusal is a
    ValueError naming ``option`` (the command line passes ``--to``), the file or the source.
    """
    if how not in ("copy", "link"):
        raise ValueError(f"how must be 'copy' or 'link', not {how!r}")
    target = _named(to, option, "folder")
    what = f"{option} {printable(str(target))}"
    missing = selection.missing_images()
    if missing is not None and how == "link":
        raise ValueError(
            f"cannot link images into {what}: {missing}; no link can be made (how='copy' "
            f"writes {_TABLE} and {_RECORD} only)"
        )
    _check_target(target, selection, option, what)
    publish.clean_stale()
    recorded = _open_source(selection)
    try:
        check_not_an_input(target, _listed_images(selection, recorded), option, folder=True)
        positions = _positions(selection, recorded) if recorded is not None else None
        if recorded is not None and positions is not None and how == "link":
            _check_linkable(selection, recorded.collection, positions)
        if missing is not None:
            shown = printable(str(target))
            logger.warning("%s: only %s and %s are written to %s", missing, _TABLE, _RECORD, shown)
        if not selection.rows:
            logger.warning(
                "no sample of set %r is selected (%s): %s lists none",
                shorten(selection.item.name),
                selection.rule.describe(),
                _TABLE,
            )
        names = file_names(selection)

        def write(folder: Path) -> None:
            paths = ["" for _ in names]
            files = ["" for _ in names]
            if recorded is not None and positions is not None:
                collection = recorded.collection
                for position, name in zip(positions, names, strict=True):
                    _place(collection, position, folder / name, how)
                paths = [_shown(collection, p) for p in positions]
                files = list(names)
            atomic_write_text(folder / _TABLE, _table(selection, paths, files))
            record = _record(selection, how if recorded is not None else "list", names, recorded)
            # Links are listed with their targets: each is verified before a later run removes it.
            record["files"] = publish.build_manifest(folder, own=(_RECORD,), links=True)
            text = json.dumps(record, indent=2, allow_nan=False) + "\n"
            atomic_write_text(folder / _RECORD, text)

        publish.publish_folder(
            target,
            write,
            manifest=lambda: _replaceable(target, what),
            own=(_RECORD,),
            refuse=f"cannot write {option}",
        )
    finally:
        if recorded is not None:
            recorded.close()
    logger.info("wrote %d samples to %s", len(selection.rows), printable(str(target)))
    return target


def _check_linkable(
    selection: Selection, collection: ImageCollection, positions: Sequence[int]
) -> None:
    """Refuse links, before anything is written, to images that are no files of their own
    (what the source opened as, not what the run recorded it to be)."""
    for position in positions:
        if collection.path(position) is None:
            kind = "members of the archive" if collection.kind == "archive" else "not files in"
            raise ValueError(
                f"links need images that are files, but the images of set "
                f"{shorten(selection.item.name)!r} are {kind} {printable(collection.source)}: "
                "use --copy"
            )


def _place(collection: ImageCollection, position: int, target: Path, how: str) -> None:
    """Link (``how`` "link") or copy image ``position`` of ``collection`` to ``target``; an
    image that cannot be read (or is no file to link to) is a ValueError naming it."""
    try:
        if how == "link":
            os.symlink(collection.check_file(position), target)
        else:
            _write_new(target, collection.read_bytes(position))
    except UnreadableImage as error:
        name = shorten(printable(error.name))
        action = f"link {name} of" if how == "link" else f"copy {name} from"
        raise ValueError(
            f"cannot {action} {printable(collection.source)}: {error.reason}"
        ) from error


def _write_new(target: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``target`` (in the staging folder, which is ours)."""
    with open(target, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _record(
    selection: Selection, how: str, names: Sequence[str], recorded: RecordedImages | None
) -> dict[str, Any]:
    item = selection.item
    results = selection.results
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": printable(os.path.abspath(results.root)),
        "mode": results.mode,
        "set": item.name,
        "rule": selection.rule.to_dict(),
        "description": selection.rule.describe(),
        "score": selection.score_name,
        "how": how,
        "images": {
            "source": printable(item.source or ""),
            "kind": item.kind,
            "images_fingerprint": item.images_fingerprint,
        }
        if recorded is not None
        else None,
        "selected": [
            {
                "rank": s.rank,
                "row": s.row,
                "name": s.name,
                "score": s.score if s.score is not None and math.isfinite(s.score) else None,
                "file": names[position] if recorded is not None else None,
            }
            for position, s in enumerate(selection.rows)
        ],
    }


# ---------------------------------------------------------------------- an earlier output


def _check_target(target: Path, selection: Selection, option: str, what: str) -> None:
    """Refuse, before any image is read, an output folder that cannot be used."""
    if target.is_symlink():
        raise ValueError(
            f"cannot write {what}: it is a symbolic link; give the folder it points to or a new "
            "folder"
        )
    check_not_an_input(target, _inputs(selection), option, folder=True, reasons=_REASONS)
    if os.path.lexists(target):
        if not target.is_dir():
            raise ValueError(f"cannot write {what}: it is not a folder")
        if any(target.iterdir()):
            _earlier_output(target, what)
    check_parent_folder(target, what)


def check_earlier_output(
    folder: str | os.PathLike[str], *, option: str = "the output folder"
) -> None:
    """Refuse (ValueError naming ``option``) a folder that :func:`write_selection` would not
    replace: one that is not empty and not an earlier output of ``rarity filter`` holding
    exactly what its ``filter.json`` lists, unchanged. For a caller that checks its outputs
    before long work (the demo)."""
    target = Path(folder)
    if target.is_dir() and not target.is_symlink() and any(target.iterdir()):
        _earlier_output(target, f"{option} {printable(str(target))}")


def _earlier_output(target: Path, what: str | None = None) -> dict[str, dict[str, Any]]:
    """The files (and links) an earlier output of ``rarity filter`` at ``target`` lists, when
    it holds exactly those, unchanged; ValueError naming up to three others otherwise."""
    what = what or f"the output folder {printable(str(target))}"
    record = _read_record(target / _RECORD)
    manifest = publish.read_manifest(record.get("files")) if record is not None else None
    if manifest is None:
        foreign = publish.foreign_entries(target, {})
        raise ValueError(
            f"cannot write {what}: it is not empty and not an output of `rarity filter` (it "
            f"holds {publish.describe_foreign(foreign)}); move its files elsewhere or give a new "
            "folder"
        )
    foreign = publish.foreign_entries(target, manifest, own=(_RECORD,))
    if foreign:
        raise ValueError(
            f"cannot write {what}: it holds files rarity-score did not write or that changed "
            f"since ({publish.describe_foreign(foreign)}); move them elsewhere or give a new "
            "folder"
        )
    return manifest


def _read_record(path: Path) -> dict[str, Any] | None:
    """``filter.json`` of an output of ours, or None (missing, too large, not ours)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_RECORD_BYTES:
            return None
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def _replaceable(target: Path, what: str) -> dict[str, dict[str, Any]] | None:
    """What may be replaced at ``target``, asked right before the swap (None: nothing is there);
    the folder is checked again (and once more, file by file and link by link, as it goes)."""
    if not (target.is_dir() and not target.is_symlink() and any(target.iterdir())):
        return None
    return _earlier_output(target, what)
