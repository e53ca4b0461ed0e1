"""``python -m rarity_score``: the ``rarity`` command."""

import sys

from rarity_score._entry import run

if __name__ == "__main__":  # pragma: no cover - run as a program
    sys.exit(run())
