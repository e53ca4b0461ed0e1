"""The ``rarity`` command: score images or feature files, compare generated sets or datasets,
rebuild reports, extract features, list the extractors, run the offline demo.

Thin by design: parse the arguments (:mod:`~rarity_score.cli.parser`, with the option groups of
:mod:`~rarity_score.cli.options`), build the option values once, call the Python API
(:mod:`~rarity_score.cli.commands`), print what it returned (:mod:`~rarity_score.cli.output`).
No maths here. This module is the process's contract: exit statuses, errors, signals.

Logging goes to stderr: warnings only by default, ``-v`` adds progress (INFO), ``-vv`` adds
details (DEBUG), ``-q`` keeps errors only and prints no summary and no progress bar. Exit
status: 0 on success, 2 on bad input or usage (one line ``rarity: error: ...`` on stderr), 1 when
the machine fails (out of memory, a device error: one line too), 130 when interrupted (Ctrl-C),
143 when terminated (SIGTERM); an interrupted run cleans up as a failed one does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from rarity_score import cluster
from rarity_score.cli.options import UsageError
from rarity_score.cli.output import configure_logging, log_warning
from rarity_score.cli.parser import build_parser, usage_line
from rarity_score.io.atomic import is_machine_failure
from rarity_score.io.names import one_line

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rarity`` command line with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status instead of exiting.

    SIGTERM (``kill``, a job scheduler's stop) is handled as Ctrl-C is: the run stops, cleans up
    (no partial output, no staging folder) and exits with 143 (128 + SIGTERM; 130 for Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    previous = _catch_sigterm()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:  # --help, --version, or a usage error (already printed)
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        args.verbose = getattr(args, "verbose", 0)
        args.quiet = getattr(args, "quiet", False)
        args.command_line = ["rarity", *argv]  # recorded in results directories (run.json)
        configure_logging(args.verbose, args.quiet)
        with warnings.catch_warnings(), cluster.use(getattr(args, "dask", None)):
            warnings.showwarning = log_warning
            return int(args.handler(args))
    except UsageError as error:  # an option's value, refused once parsed: as argparse would
        print(usage_line(error, f"rarity {args.command if args else ''}"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rarity extractors | head`: the reader left; nothing to report
        _silence_stdout()
        return 0
    except (ValueError, OSError, ImportError) as error:  # FeatureFileError is a ValueError
        logger.debug("error details", exc_info=True)
        print(f"rarity: error: {one_line(error)}", file=sys.stderr)
        return 1 if is_machine_failure(error) else 2  # a full disk is not the input's fault
    except (RuntimeError, MemoryError) as error:  # out of memory, a device failing: not the input
        logger.debug("error details", exc_info=True)
        message = one_line(error)
        hint = "" if args is not None and args.verbose else " (run with -vv for the details)"
        print(f"rarity: error: {type(error).__name__}: {message}{hint}", file=sys.stderr)
        return 1
    except _Terminated:
        print("rarity: terminated", file=sys.stderr)
        return 128 + int(signal.SIGTERM)
    except KeyboardInterrupt:
        print("rarity: interrupted", file=sys.stderr)
        return 130
    finally:
        _restore_sigterm(previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that the cleanup of Ctrl-C runs for it too."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _catch_sigterm() -> Any:
    """Handle SIGTERM as Ctrl-C while the command runs; return the handler to restore (None
    where handlers cannot be set: not the main thread, no SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platform without it
        return None


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """Point stdout at devnull so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass
