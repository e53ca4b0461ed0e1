"""``rarity filter``: its arguments and its command (the selection itself is
:mod:`rarity_score.filtering`)."""

from __future__ import annotations

import argparse
import logging
import math
from typing import TYPE_CHECKING, Any

from rarity_score.cli.options import UsageError, whole_number
from rarity_score.io.names import printable, shorten

if TYPE_CHECKING:
    from rarity_score.filtering import Rule, Selection

__all__ = ["DESCRIPTION", "add_arguments", "filter_command"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Select samples of one set of a results directory (written by `rarity compare`, `rarity
datasets` or `rarity score --report`) by their saved scores, and write them as files in rank
order or as a list. Nothing is recomputed. On a `datasets` results directory the sets are the
datasets themselves: data curation (the most typical or the rarest images of a training set).

Rules (give one); rank 1 comes first, and samples with equal scores keep the set's row order
(the lower row first), so a selection is the same on every run:
  --rarest N          the N in-manifold samples of largest rarity, rarest first
  --most-common N     the N in-manifold samples of smallest rarity, most common first
  --quantile LO HI    the in-manifold samples with q(LO) <= rarity <= q(HI), q the quantiles
                      (numpy.quantile, linear) of the set's in-manifold rarities; most common
                      first. 0 0.1 is the most typical 10 %, 0.9 1 the rarest 10 %
  --out-of-manifold   the samples out of the real manifold, farthest from their nearest real
                      sample first (row order where the set does not hold that distance)
  --unauthentic       the likely copies of real samples (authentic = false), closest first
Out of the manifold there is no rarity, so --rarest, --most-common and --quantile take
in-manifold samples only; an N larger than what there is takes all of them.

Outputs (give one):
  --to DIR [--copy | --link]  DIR receives NNN_<name> files in rank order (the rank padded to
                      the width of the count, then the original's base name made a safe file
                      name), selection.csv (path, name, the score under its own name: rarity,
                      nearest_real_distance or authenticity_ratio, then rank, file) and
                      filter.json (the rule and the files written). --copy (the default) copies
                      the original bytes; --link makes symbolic links to the original files
                      (not for archives). A set without image files (features, images held in
                      memory, a list of paths whose location the run did not record) gets
                      selection.csv and filter.json only; --copy and --link are refused for it.
  --list FILE         only the CSV (path, name, the score, rank); an existing FILE is refused.

Images are read only from the source the run recorded, and only when its fingerprint (names,
sizes, modification times) still equals the recorded one: images moved or changed since the
run are refused, never guessed at. DIR is written into a temporary folder beside it and moved
into place when complete (an interrupted run leaves nothing); an existing DIR is replaced only
when it is an earlier output of `rarity filter` holding exactly the files its filter.json
lists, unchanged, and any other non-empty folder is refused. Neither DIR nor FILE may be or lie
in the results directory or an image folder of the run, nor be or hold an image file the run
read.

Examples:
  rarity filter results/ --set psi1.0 --rarest 100 --to rarest/
  rarity filter results/ --set psi1.0 --out-of-manifold --to outside/ --link
  rarity filter curation/ --set train --quantile 0 0.1 --list most-typical.csv
"""


def _fraction(text: str) -> float:
    """--quantile LO HI: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1], got {shorten(text)!r}"
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {shorten(text)}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``rarity filter``."""
    parser.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help="a folder written by rarity compare, rarity datasets or rarity score --report",
    )
    parser.add_argument(
        "--set",
        metavar="NAME",
        help="the set to select from, as the results name it (needed when there are several)",
    )
    rules = parser.add_argument_group("selection rule (give one)").add_mutually_exclusive_group(
        required=True
    )
    rules.add_argument(
        "--rarest",
        type=whole_number,
        metavar="N",
        help="the N in-manifold samples of largest rarity, rarest first",
    )
    rules.add_argument(
        "--most-common",
        type=whole_number,
        metavar="N",
        help="the N in-manifold samples of smallest rarity (the most typical), most common first",
    )
    rules.add_argument(
        "--quantile",
        type=_fraction,
        nargs=2,
        metavar=("LO", "HI"),
        help=(
            "the in-manifold samples with rarity between the LO and HI quantiles of the set's "
            "in-manifold rarities (0 <= LO <= HI <= 1), most common first"
        ),
    )
    rules.add_argument(
        "--out-of-manifold",
        action="store_true",
        help="the samples out of the manifold, farthest from their nearest real sample first",
    )
    rules.add_argument(
        "--unauthentic",
        action="store_true",
        help="the likely copies of real samples (authentic = false), closest copies first",
    )
    outputs = parser.add_argument_group("what to write (give --to DIR or --list FILE)")
    where = outputs.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--to",
        metavar="DIR",
        help=(
            "write the selected images into DIR (created, or replaced when it is an earlier "
            "output of rarity filter), with selection.csv and filter.json"
        ),
    )
    where.add_argument(
        "--list",
        metavar="FILE",
        help="write only the CSV list (path, name, the score, rank) to FILE, which must not exist",
    )
    how = outputs.add_mutually_exclusive_group()
    how.add_argument(
        "--copy",
        dest="how",
        action="store_const",
        const="copy",
        help="with --to: copy the original files (the default)",
    )
    how.add_argument(
        "--link",
        dest="how",
        action="store_const",
        const="link",
        help="with --to: symbolic links to the original files (images that are files only)",
    )


def _rule(args: argparse.Namespace) -> Rule:
    """The rule the options give; a bad value is a usage error naming the option."""
    from rarity_score.filtering import Rule

    params: dict[str, Any] = {}
    if args.rarest is not None:
        option, kind, params = f"--rarest {args.rarest}", "rarest", {"count": args.rarest}
    elif args.most_common is not None:
        option, kind = f"--most-common {args.most_common}", "most-common"
        params = {"count": args.most_common}
    elif args.quantile is not None:
        low, high = args.quantile
        option, kind = f"--quantile {low:g} {high:g}", "quantile"
        params = {"low": low, "high": high}
    elif args.out_of_manifold:
        option, kind = "--out-of-manifold", "out-of-manifold"
    else:
        option, kind = "--unauthentic", "unauthentic"
    try:
        return Rule(kind, **params)
    except ValueError as error:  # "rarest: N must be ...": the option names the rule
        raise UsageError(f"{option}: {str(error).split(': ', 1)[-1]}") from error


def filter_command(args: argparse.Namespace) -> int:
    """Run ``rarity filter``."""
    from rarity_score.filtering import select, write_list, write_selection
    from rarity_score.results_dir import load_results

    if args.list is not None and args.how is not None:
        raise UsageError(f"--{args.how} goes with --to DIR; --list FILE writes only the list")
    rule = _rule(args)
    results = load_results(args.results_dir)
    selection = select(results, rule, args.set)
    if args.to is not None:
        missing = selection.missing_images()
        if missing is not None and args.how is not None:
            raise UsageError(
                f"--{args.how}: {missing}, so there is nothing to {args.how}; leave --{args.how} "
                "out (DIR then gets selection.csv and filter.json only) or give --list FILE"
            )
        path = write_selection(selection, args.to, how=args.how or "copy", option="--to")
    else:
        path = write_list(selection, args.list, option="--list")
    logger.info("wrote %s", printable(str(path)))
    if not args.quiet:
        _print(selection, path, args.how or "copy", listed=args.list is not None)
    return 0


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _print(selection: Selection, path: object, how: str, *, listed: bool) -> None:
    """What was selected and what was written (count, folder), on stdout."""
    count = len(selection.rows)
    shown = printable(str(path))
    print(selection.describe())
    if listed:
        print(f"Wrote the list of {_count(count, 'sample')} to {shown}")
    elif selection.missing_images() is not None:
        print(
            f"Wrote selection.csv and filter.json ({_count(count, 'sample')}; the set has no "
            f"image files) to {shown}"
        )
    else:
        what = _count(count, "copy", "copies") if how == "copy" else _count(count, "symbolic link")
        print(f"Wrote {what} with selection.csv and filter.json to {shown}")
