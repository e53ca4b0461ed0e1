"""The ``rarity`` command's entry point: Ctrl-C at any moment gives one line and exit 130.

``rarity_score.cli`` imports numpy and parses the arguments before :func:`rarity_score.cli.main`
can catch anything; an interrupt during those imports would otherwise end in a traceback. This
module imports nothing heavy itself (the package's own ``__init__`` must stay light too).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the ``rarity`` command line (see :func:`rarity_score.cli.main`) and return its exit
    status; an interrupt while the program starts up returns 130 with one line on stderr."""
    try:
        from rarity_score.cli import main

        return main(argv)
    except KeyboardInterrupt:
        print("rarity: interrupted", file=sys.stderr)
        return 130
