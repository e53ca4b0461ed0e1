"""Checks that an output never names an input, made before any work starts.

An output that is an input would overwrite it (``rarity score --real a.npz --out a.npz``); a
results directory inside an input folder would be read back as images by the next run; a results
directory that holds an input would delete it when it is replaced. Paths are compared after
resolving symbolic links (``os.path.realpath``) and, where both exist, by identity
(``os.path.samefile``: hard links, case-insensitive file systems). The ``FILE.npz:NAME`` syntax
of feature files names ``FILE.npz``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rarity_score.io.names import printable

__all__ = [
    "Labelled",
    "check_distinct_outputs",
    "check_not_an_input",
    "check_output_file",
    "check_parent_folder",
    "input_paths",
    "same_path",
]

#: Inputs or outputs with the option (or set name) that gave them, for the messages:
#: ``{"--real": "real.npz", "--fake psi0.7": "samples/psi0.7"}`` or a sequence of such pairs.
Labelled = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _pairs(items: Labelled) -> list[tuple[str, Any]]:
    return list(items.items()) if isinstance(items, Mapping) else list(items)


def input_paths(source: Any) -> list[Path]:
    """The files or folders an input reads: one for a path (``FILE.npz:NAME`` gives
    ``FILE.npz``), one per entry for a sequence of paths, none for arrays and other objects."""
    from rarity_score.io.features import split_key

    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, bytes) or not text:
            return []
        return [Path(text) if ":" not in text else split_key(text)[0]]
    if isinstance(source, (list, tuple)):
        return [
            path
            for item in source
            if isinstance(item, (str, os.PathLike))
            for path in input_paths(item)
        ]
    return []


def _real(path: Path) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (links resolved; an existing pair is
    compared by identity, which also catches hard links)."""
    try:
        if os.path.samefile(a, b):
            return True
    except (OSError, ValueError):  # one of them does not exist (yet)
        pass
    return _real(Path(a)) == _real(Path(b))


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), None when it does not exist: what ``os.path.samefile``
    compares."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def _resolved(path: Path, parents: dict[str, str]) -> str:
    """``_real(path)``, with the folders resolved once each (``parents`` caches them): one
    check of the last component instead of one per component, for the thousands of images a
    list file names."""
    full = os.path.abspath(os.path.expanduser(path))
    parent, name = os.path.split(full)
    if not name:
        return os.path.realpath(full)
    base = parents.get(parent)
    if base is None:
        base = parents[parent] = os.path.realpath(parent)
    joined = os.path.join(base, name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


def _inside(inner: str, outer: str) -> bool:
    """Whether resolved path ``inner`` lies strictly inside resolved folder ``outer`` (a prefix
    test of whole components; on another drive it never does)."""
    if inner == outer:
        return False
    inner, outer = os.path.normcase(inner), os.path.normcase(outer)
    return inner.startswith(outer if outer.endswith(os.sep) else outer + os.sep)


def check_not_an_input(
    output: str | os.PathLike[str] | None,
    inputs: Labelled,
    option: str,
    *,
    folder: bool = False,
    inside: bool | None = None,
    reasons: Mapping[str, str] | None = None,
) -> None:
    """Refuse (``ValueError``, naming ``option`` and the input) an ``output`` that is one of
    ``inputs``. A ``folder`` output (a results directory, replaced as a whole) is also refused
    inside an input folder (the next run would read its files as input) and around an input
    (replacing it would delete the input). ``inside`` (default: ``folder``) refuses an output
    inside an input folder, also for a file output (a file written into a folder of images
    could be read as one of them).

    ``inputs`` maps a label (``"--real"``, ``"generated set 'psi0.7'"``) to what was given: a
    path, ``FILE.npz:NAME``, a sequence of paths; arrays and other objects are skipped.
    ``reasons`` maps a label to why an output must not lie inside that input, where the default
    reason (it would be read as input) is not the true one: a results directory is replaced
    only when it holds nothing but its own files.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> check_not_an_input(run / "out", {"the results directory": run}, "--to", folder=True,
    ...                    reasons={"the results directory": "it would no longer be ours"})
    Traceback (most recent call last):
    ...
    ValueError: --to .../out lies inside the input folder ... (the results directory); it would
    no longer be ours: give --to a path outside it
    """
    if output is None:
        return
    inside = folder if inside is None else inside
    reasons = reasons or {}
    out = Path(os.fspath(output))
    out_real = _real(out)
    out_id = _identity(out)
    parents: dict[str, str] = {}  # a list file's images share a few folders: resolved once
    for label, source in _pairs(inputs):
        for path in input_paths(source):
            path_real = _resolved(path, parents)
            if path_real == out_real or (out_id is not None and _identity(path) == out_id):
                raise ValueError(
                    f"{option} {out} is also an input ({label}: {source}); writing it would "
                    f"overwrite that input: give {option} another path"
                )
            if inside and _inside(out_real, path_real) and os.path.isdir(path_real):
                default = (
                    "the next run would read its files as input"
                    if folder
                    else "the next run could read it as input"
                )
                raise ValueError(
                    f"{option} {out} lies inside the input folder {path} ({label}); "
                    f"{reasons.get(label, default)}: give {option} a path outside it"
                )
            if folder and _inside(path_real, out_real):
                raise ValueError(
                    f"{option} {out} holds the input {path} ({label}); replacing it would delete "
                    f"that input: give {option} another folder"
                )


def check_distinct_outputs(outputs: Labelled, *, folders: Iterable[str] = ()) -> None:
    """Refuse two outputs that are the same path (``--out x --json x``), and a file output inside
    a folder output whose label is in ``folders`` (the folder is written as a whole)."""
    given = [(label, Path(os.fspath(path))) for label, path in _pairs(outputs) if path is not None]
    folder_labels = set(folders)
    for i, (label, path) in enumerate(given):
        for other_label, other in given[i + 1 :]:
            if same_path(path, other):
                raise ValueError(
                    f"{label} and {other_label} are the same path ({path}); give each output "
                    "its own path"
                )
            for (f_label, f_path), (o_label, o_path) in (
                ((label, path), (other_label, other)),
                ((other_label, other), (label, path)),
            ):
                if f_label in folder_labels and _inside(_real(o_path), _real(f_path)):
                    raise ValueError(
                        f"{o_label} {o_path} lies inside {f_label} {f_path}, which is written as "
                        f"a whole: give {o_label} a path outside it"
                    )


def check_output_file(path: str | os.PathLike[str] | None, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written: an existing thing that is
    not a regular file (a FIFO, a device: replacing it is never wanted), a folder, a missing or
    unwritable parent folder (:func:`rarity_score.io.atomic.check_writable`). ``ValueError``."""
    from rarity_score.io.atomic import check_writable

    if path is None:
        return
    if not os.fspath(path):
        raise ValueError(f"{option} needs a file name (it was given an empty one)")
    target = Path(os.fspath(path))
    if target.exists() and not target.is_file() and not target.is_dir():
        raise ValueError(
            f"cannot write {option} {target}: it exists and is not a regular file; give a file name"
        )
    check_writable(target)


def check_parent_folder(target: str | os.PathLike[str], what: str) -> None:
    """Refuse (ValueError "cannot write WHAT: ...") an output folder ``target`` whose parent
    folder is missing, not a folder, or not writable: it could not be created there."""
    parent = Path(target).absolute().parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"cannot write {what}: {printable(str(parent))} {problem}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {what}: folder {printable(str(parent))} is not writable")
