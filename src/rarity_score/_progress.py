"""The one progress display of the package (tqdm on stderr), for extraction and the k-NN sweep."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(
    total: int, description: str, *, unit: str, enabled: bool, initial: int = 0
) -> Any:
    """A tqdm bar on stderr, or a silent stand-in when ``enabled`` is False or tqdm is missing.

    ``description`` is what runs (its first word, e.g. "features") and on what; a long one keeps
    that word and the end of the rest (a path's end names it best), so bars stay one line.
    Runs shorter than half a second show no bar at all: it would only flash, and an error message
    after a very short run stays alone on its line. tqdm itself hides the bar when stderr is not a
    terminal only if asked, so callers pass ``enabled=... and sys.stderr.isatty()`` where wanted.
    A caller that stops on an error sets ``bar.leave = False`` before closing it: a half bar
    above the error message only confuses.
    """
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:  # the core needs numpy only; without tqdm there is simply no bar
        return _Silent()
    return tqdm(
        total=total,
        initial=initial,
        desc=_label(description),
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
        delay=0.5,
    )


def _label(description: str, width: int = 30) -> str:
    """``description`` with the part after its first word cut to its last ``width`` characters.

    >>> _label("features /data/" + "x" * 40 + "/images")
    'features ...xxxxxxxxxxxxxxxxxxxx/images'
    >>> _label("features small")
    'features small'
    """
    head, space, rest = description.partition(" ")
    if not space:
        head, rest = "", head
    if len(rest) > width:
        rest = "..." + rest[-(width - 3) :]
    return f"{head}{space}{rest}"


class _Silent:
    """What a disabled bar offers: update and close, doing nothing."""

    leave: bool = True

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
