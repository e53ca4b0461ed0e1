"""The one progress display of the package (tqdm on stderr), for extraction and the k-NN sweep."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(
    total: int, description: str, *, unit: str, enabled: bool, initial: int = 0
) -> Any:
    """A tqdm bar on stderr, or a silent stand-in when ``enabled`` is False or tqdm is missing.

    Runs shorter than half a second show no bar at all: it would only flash, and an error message
    after a very short run stays alone on its line. tqdm itself hides the bar when stderr is not a
    terminal only if asked, so callers pass ``enabled=... and sys.stderr.isatty()`` where wanted.
    """
    try:
        from tqdm import tqdm
    except ImportError:  # the core needs numpy only; without tqdm there is simply no bar
        enabled = False
        tqdm = None
    if tqdm is None:
        return _Silent()
    label = description if len(description) <= 30 else "..." + description[-27:]
    return tqdm(
        total=total,
        initial=initial,
        desc=label,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
        delay=0.5,
    )


class _Silent:
    """What a disabled bar offers: update and close, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
