"""What the command line names as inputs and outputs: ``NAME=PATH`` sets, and the output paths,
checked against the inputs and each other before any work."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_outputs", "default_name", "named_sources"]


def named_sources(
    given: Sequence[str], what: str, option: str, *, default: Callable[[str], str] | None = None
) -> dict[str, str]:
    """``NAME=PATH`` arguments as an ordered name -> path mapping; refuses a missing ``=``, an
    empty name or path, and a name given twice. With ``default``, the name may be left out
    (``[NAME=]PATH``): a text without ``=``, or one that names an existing path as a whole
    while no split of it does, is named ``default(path)``."""
    out: dict[str, str] = {}
    texts: dict[str, str] = {}
    defaulted: set[str] = set()
    for text in given:
        unnamed = default is not None and _unnamed(text)
        if unnamed and default is not None:
            name, path = default(text), text
        else:
            name, path = _split_named(text, what, option)
        if name in out:
            hint = ""
            if unnamed or name in defaulted:
                hint = " (a name taken from the folder or file: give NAME=PATH)"
            raise ValueError(
                f"duplicate {what} name {name!r}{hint} ({option}{texts[name]} and "
                f"{option}{text}); give each {what} its own name"
            )
        out[name] = path
        texts[name] = text
        if unnamed:
            defaulted.add(name)
    return out


def default_name(path: str) -> str:
    """The name of a set or space given without one: a folder's name (``psi0.7`` for
    ``samples/psi0.7/``), else the file's name without its suffix
    (:func:`rarity_score.sources.name_of`)."""
    from rarity_score.sources import name_of

    folder = Path(path)
    if folder.is_dir():
        return Path(os.path.abspath(folder)).name or name_of(path)
    return name_of(path)


def _unnamed(text: str) -> bool:
    """Whether ``[NAME=]PATH`` gives no name: no ``=``, or the whole text is an existing path
    and no ``NAME=PATH`` split of it names one."""
    if "=" not in text:
        return True
    if not Path(text).exists():
        return False
    splits = [i for i, char in enumerate(text) if char == "="]
    return not any(text[:i].strip() and Path(text[i + 1 :]).exists() for i in splits)


def _split_named(text: str, what: str, option: str) -> tuple[str, str]:
    """Split ``NAME=PATH``. Names may hold ``=`` (``psi=0.7=samples/psi0.7``): the first split
    whose path exists wins, else the first ``=``."""
    from rarity_score.io.features import split_key

    example = f"{option}psi0.7=samples/psi0.7"
    if "=" not in text:
        raise ValueError(f"{what} {text!r}: expected NAME=PATH (e.g. {example})")
    splits = [i for i, char in enumerate(text) if char == "="]
    chosen = splits[0]
    for i in splits:
        path = text[i + 1 :]
        if text[:i].strip() and path and (Path(path).exists() or split_key(path)[0].exists()):
            chosen = i
            break
    name, path = text[:chosen], text[chosen + 1 :]
    if not name.strip() or not path:
        raise ValueError(
            f"{what} {text!r}: both NAME and PATH must be given in NAME=PATH (e.g. {example})"
        )
    return name, path


def check_outputs(
    inputs: dict[str, Any],
    *,
    files: dict[str, str | None] | None = None,
    folders: dict[str, str | None] | None = None,
) -> None:
    """Fail before any work, not after it, when an output cannot be written or would overwrite
    an input: every output file and results directory (``folders``) is checked against every
    input (:mod:`rarity_score.io.paths`) and against the other outputs, and every file for
    writability (a results directory is checked once, by the run that writes it:
    :func:`rarity_score.results_dir.check_output_dir`). The messages name the options."""
    from rarity_score.io.paths import (
        check_distinct_outputs,
        check_not_an_input,
        check_output_file,
    )

    files = files or {}
    folders = folders or {}
    check_distinct_outputs({**files, **folders}, folders=folders)
    for option, path in files.items():
        check_not_an_input(path, inputs, option)
        check_output_file(path, option)
    for option, path in folders.items():
        if path is not None:
            check_not_an_input(path, inputs, option, folder=True)
