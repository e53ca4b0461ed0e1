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

__all__ = [
    "Labelled",
    "check_distinct_outputs",
    "check_not_an_input",
    "check_output_file",
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
        return [split_key(text)[0]]
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


def _inside(inner: str, outer: str) -> bool:
    """Whether resolved path ``inner`` lies strictly inside resolved folder ``outer``."""
    try:
        return inner != outer and os.path.commonpath([inner, outer]) == outer
    except ValueError:  # different drives (Windows)
        return False


def check_not_an_input(
    output: str | os.PathLike[str] | None,
    inputs: Labelled,
    option: str,
    *,
    folder: bool = False,
) -> None:
    """Refuse (``ValueError``, naming ``option`` and the input) an ``output`` that is one of
    ``inputs``. A ``folder`` output (a results directory, replaced as a whole) is also refused
    inside an input folder (the next run would read its files as images) and around an input
    (replacing it would delete the input).

    ``inputs`` maps a label (``"--real"``, ``"generated set 'psi0.7'"``) to what was given: a
    path, ``FILE.npz:NAME``, a sequence of paths; arrays and other objects are skipped.
    """
    if output is None:
        return
    out = Path(os.fspath(output))
    out_real = _real(out)
    for label, source in _pairs(inputs):
        for path in input_paths(source):
            path_real = _real(path)
            if same_path(out, path):
                raise ValueError(
                    f"{option} {out} is also an input ({label}: {source}); writing it would "
                    f"overwrite that input: give {option} another path"
                )
            if not folder:
                continue
            if _inside(out_real, path_real) and os.path.isdir(path_real):
                raise ValueError(
                    f"{option} {out} lies inside the input folder {path} ({label}); the next "
                    f"run would read its files as input: give {option} a path outside it"
                )
            if _inside(path_real, out_real):
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
    target = Path(os.fspath(path))
    if target.exists() and not target.is_file() and not target.is_dir():
        raise ValueError(
            f"cannot write {option} {target}: it exists and is not a regular file; give a file name"
        )
    check_writable(target)
