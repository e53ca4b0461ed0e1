"""What the command line names as inputs and outputs: ``NAME=PATH`` sets, and the output paths,
checked against the inputs and each other before any work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_outputs", "named_sources"]


def named_sources(given: Sequence[str], what: str, option: str) -> dict[str, str]:
    """``NAME=PATH`` arguments as an ordered name -> path mapping; refuses a missing ``=``, an
    empty name or path, and a name given twice."""
    out: dict[str, str] = {}
    for text in given:
        name, path = _split_named(text, what, option)
        if name in out:
            raise ValueError(
                f"duplicate {what} name {name!r} ({option}{name}={out[name]} and "
                f"{option}{text}); give each set its own name"
            )
        out[name] = path
    return out


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
