"""``rarity filter``: its arguments and its command (the selection itself is
:mod:`rarity_score.filtering`)."""

from __future__ import annotations

import argparse

__all__ = ["DESCRIPTION", "add_arguments", "filter_command"]

DESCRIPTION = "Select samples of a results directory (to be written)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``rarity filter``."""


def filter_command(args: argparse.Namespace) -> int:
    """Run ``rarity filter``."""
    raise NotImplementedError
